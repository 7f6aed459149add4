"""The gateway process: the public API in front of profile, scoring and engagement."""

from __future__ import annotations

from fastapi import FastAPI

from runtime.service import ServiceRuntime, ServiceSpec, create_service_app
from services.gateway import api
from services.gateway.clients import ServiceClient, Upstreams
from services.gateway.models import Base
from services.gateway.settings import GatewaySettings

NAME = "gateway"
TAGS = [
    {"name": "customers", "description": "The unified customer view, scoped to the caller and audited."},
    {"name": "operations", "description": "Liveness, readiness and metrics."},
]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    config = settings.gateway

    async def on_start(runtime: ServiceRuntime) -> None:
        timeout = config.upstream_timeout_s
        runtime.extras["upstreams"] = Upstreams(
            ServiceClient("profile", config.profile_url, timeout),
            ServiceClient("scoring", config.scoring_url, timeout),
            ServiceClient("engagement", config.engagement_url, timeout),
        )
        runtime.extras["jwt_secret"] = settings.resolved_jwt_secret()
        runtime.extras["unmasked_roles"] = list(config.unmasked_roles)

    async def on_stop(runtime: ServiceRuntime) -> None:
        await runtime.extras["upstreams"].close()

    return create_service_app(
        ServiceSpec(
            name=NAME,
            title="Customer 360 API",
            description="The public API of the customer 360 platform. Every `/v1` route needs a bearer JWT "
            "(`c360 token --role admin` prints one for local use). Errors are RFC 9457 problem documents.",
            settings=settings,
            metadata=Base.metadata,
            routers=[api.router],
            outbox_settings=settings.outbox,
            on_start=on_start,
            on_stop=on_stop,
            openapi_tags=TAGS,
        )
    )
