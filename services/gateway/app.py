"""The gateway process: the public API in front of profile, scoring and engagement."""

from __future__ import annotations

from fastapi import FastAPI

from runtime.service import ServiceRuntime, ServiceSpec, create_service_app
from services.gateway import api, audiences, reports, work
from services.gateway.auth import RateLimiter
from services.gateway.clients import ServiceClient, Upstreams
from services.gateway.models import Base
from services.gateway.settings import GatewaySettings
from services.gateway.store import AuditWriter

NAME = "gateway"
TAGS = [
    {"name": "customers", "description": "The unified customer view, search and timeline: scoped and audited."},
    {"name": "tasks", "description": "RM worklists and the task lifecycle."},
    {"name": "managers", "description": "The RM roster that customers are assigned from."},
    {"name": "reports", "description": "Tier distribution and data quality."},
    {"name": "events", "description": "Bank events over HTTP, for systems that cannot produce to Kafka."},
    {"name": "admin", "description": "Split, erasure and the audit log: `admin` only."},
    {"name": "operations", "description": "Liveness, readiness and metrics."},
]
DESCRIPTION = """The public API of the customer 360 platform.

**Authentication.** Every `/v1` route needs `Authorization: Bearer <JWT>`: HS256 signed with
`C360_JWT_SECRET` (or RS256 verified with a configured public key), with the claims `sub`, `role`,
`exp`, and `rm_id` for `rm` or `branch_id` for `supervisor`. `c360 token --role admin` prints one
for local use. A missing, expired or badly signed token is 401.

**Roles.** `rm` sees the customers assigned to them and their own tasks; `supervisor` their branch;
`analyst` reports and masked views of every customer; `admin` everything, including split,
erasure and the audit log; `service` may only post events. A route the role may not use is 403; a
customer or task outside the caller's scope is 404, exactly as if it did not exist.

**Masking.** Identity numbers are kept masked at rest; phones and e-mails are masked for every
role but those configured (`admin` by default). **Audit.** Every read of a customer's data is
recorded (who, role, customer, route, status, time) before the answer is sent, and published on
`c360.audit.v1`.

**Errors** are RFC 9457 problem documents (`application/problem+json`) with a stable `type`.
**Lists** page by cursor: pass `next_cursor` back as `cursor`. **Limits**: too many requests from
one client answer 429 with `Retry-After`.
"""


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
        runtime.extras["jwt_key"] = settings.verification_key()
        runtime.extras["jwt_algorithm"] = config.jwt_algorithm
        runtime.extras["unmasked_roles"] = list(config.unmasked_roles)
        runtime.extras["rate_limiter"] = RateLimiter(config.rate_limit_per_minute)
        runtime.extras["max_events_per_request"] = config.max_events_per_request
        runtime.extras["large_transaction_cny"] = config.large_transaction_cny
        runtime.extras["audit_writer"] = AuditWriter(runtime)

    async def on_stop(runtime: ServiceRuntime) -> None:
        await runtime.extras["upstreams"].close()

    return create_service_app(
        ServiceSpec(
            name=NAME,
            title="Customer 360 API",
            description=DESCRIPTION,
            settings=settings,
            metadata=Base.metadata,
            routers=[api.router, work.router, audiences.router, reports.router],
            outbox_settings=settings.outbox,
            on_start=on_start,
            on_stop=on_stop,
            openapi_tags=TAGS,
        )
    )
