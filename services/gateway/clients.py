"""HTTP clients for the three services: pooled, with timeouts, and a 503 problem when one is down."""

from __future__ import annotations

from typing import Any

import httpx

from runtime.errors import PROBLEM_BASE, NotFound, Relayed, ServiceUnavailable
from runtime.logging import CORRELATION_HTTP_HEADER, correlation_id

Params = dict[str, Any] | list[tuple[str, Any]] | None


class ServiceClient:
    """Calls one service's internal API. A 404 is `None` (the caller decides what is missing), a
    4xx problem is passed on as it came, and anything that is not an answer is a 503 problem."""

    def __init__(self, name: str, base_url: str, timeout_s: float) -> None:
        self.name = name
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 1.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )

    async def request(self, method: str, path: str, *, params: Params = None, json: Any = None) -> Any:
        try:
            current = correlation_id.get()
            headers = {CORRELATION_HTTP_HEADER: current} if current else None
            response = await self.http.request(method, path, params=params, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"the {self.name} service did not answer: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 500:
            raise ServiceUnavailable(f"the {self.name} service failed with status {response.status_code}")
        if response.status_code >= 400:
            raise _relayed(response)
        return response.json()

    async def get(self, path: str, params: Params = None) -> Any:
        return await self.request("GET", path, params=params)

    async def get_required(self, path: str, what: str, params: Params = None) -> Any:
        body = await self.get(path, params)
        if body is None:
            raise NotFound(f"{what} not found")
        return body

    async def close(self) -> None:
        await self.http.aclose()


def _relayed(response: httpx.Response) -> Relayed:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    slug = str(body.get("type", "")).removeprefix(PROBLEM_BASE) or f"http-{response.status_code}"
    extensions = {k: v for k, v in body.items() if k not in {"type", "title", "status", "detail", "instance"}}
    return Relayed(
        response.status_code,
        slug,
        str(body.get("title", "Request refused")),
        str(body.get("detail", f"refused with status {response.status_code}")),
        **extensions,
    )


class Upstreams:
    def __init__(self, profile: ServiceClient, scoring: ServiceClient, engagement: ServiceClient) -> None:
        self.profile = profile
        self.scoring = scoring
        self.engagement = engagement

    async def close(self) -> None:
        for client in (self.profile, self.scoring, self.engagement):
            await client.close()
