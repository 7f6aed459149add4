"""HTTP clients for the three services: pooled, with timeouts, and a 503 problem when one is down."""

from __future__ import annotations

from typing import Any

import httpx

from runtime.errors import NotFound, ServiceUnavailable


class ServiceClient:
    """Calls one service's internal API; `None` for a 404, a 503 problem when it cannot answer."""

    def __init__(self, name: str, base_url: str, timeout_s: float) -> None:
        self.name = name
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 1.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            response = await self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"the {self.name} service did not answer: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 500:
            raise ServiceUnavailable(f"the {self.name} service failed with status {response.status_code}")
        response.raise_for_status()
        return response.json()

    async def get_required(self, path: str, what: str) -> Any:
        body = await self.get(path)
        if body is None:
            raise NotFound(f"{what} not found")
        return body

    async def close(self) -> None:
        await self.http.aclose()


class Upstreams:
    def __init__(self, profile: ServiceClient, scoring: ServiceClient, engagement: ServiceClient) -> None:
        self.profile = profile
        self.scoring = scoring
        self.engagement = engagement

    async def close(self) -> None:
        for client in (self.profile, self.scoring, self.engagement):
            await client.close()
