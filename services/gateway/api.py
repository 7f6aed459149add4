"""Public routes under `/v1`: parse, call one view function, audit, answer."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from runtime.db import transaction
from runtime.errors import ProblemError
from runtime.service import RuntimeDep, ServiceRuntime
from services.gateway.auth import Principal, PrincipalDep, Role, require
from services.gateway.clients import Upstreams
from services.gateway.store import record_read
from services.gateway.views import Customer360, customer_360

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["customers"])

READERS = (Role.RM, Role.SUPERVISOR, Role.ANALYST, Role.ADMIN)
PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing, expired or invalid bearer token (problem+json)."},
    403: {"description": "The caller's role may not use this route (problem+json)."},
    404: {"description": "No such customer, or not in the caller's scope (problem+json)."},
    503: {"description": "A backing service did not answer (problem+json)."},
}


def upstreams(runtime: RuntimeDep) -> Upstreams:
    clients: Upstreams = runtime.extras["upstreams"]
    return clients


UpstreamsDep = Annotated[Upstreams, Depends(upstreams)]


async def _audited_view(
    runtime: ServiceRuntime,
    clients: Upstreams,
    principal: Principal,
    *,
    profile_path: str,
    route: str,
    requested_customer_id: str | None,
) -> Customer360:
    """Assemble a view and audit the read, whatever its outcome.

    A view is only returned once its read is durably audited. A failed read is audited with its
    status; if that audit write fails too, the caller still gets the original error.
    """
    require(principal, *READERS)
    try:
        view = await customer_360(clients, principal, profile_path, runtime.extras["unmasked_roles"])
    except Exception as exc:
        status = exc.status if isinstance(exc, ProblemError) else 500
        try:
            await _audit(runtime, principal, requested_customer_id, route, status)
        except Exception:
            log.exception("audit.write_failed", extra={"route": route, "status": status})
        raise
    await _audit(runtime, principal, view.customer_id, route, 200)
    return view


async def _audit(
    runtime: ServiceRuntime, principal: Principal, customer_id: str | None, route: str, status: int
) -> None:
    async with transaction(runtime.sessions) as session:
        await record_read(session, principal, customer_id, route, status)


@router.get(
    "/customers/{customer_id}",
    response_model=Customer360,
    summary="The 360 view of a customer",
    description="Identity (masked per role), source records, accounts, AUM and liabilities in CNY, tier, "
    "relationship manager, open tasks and data freshness. A merged id answers with the survivor.",
    responses=PROBLEM_RESPONSES,
)
async def get_customer(
    customer_id: Annotated[str, Path(max_length=64)],
    principal: PrincipalDep,
    runtime: RuntimeDep,
    clients: UpstreamsDep,
) -> Customer360:
    return await _audited_view(
        runtime,
        clients,
        principal,
        profile_path=f"/internal/customers/{customer_id}",
        route="/v1/customers/{customer_id}",
        requested_customer_id=customer_id,
    )


@router.get(
    "/customers/by-ref/{source}/{customer_ref}",
    response_model=Customer360,
    summary="Look a customer up by a source system's own id",
    responses=PROBLEM_RESPONSES,
)
async def get_customer_by_ref(
    source: Annotated[str, Path(max_length=64)],
    customer_ref: Annotated[str, Path(max_length=128)],
    principal: PrincipalDep,
    runtime: RuntimeDep,
    clients: UpstreamsDep,
) -> Customer360:
    return await _audited_view(
        runtime,
        clients,
        principal,
        profile_path=f"/internal/customers/by-ref/{source}/{customer_ref}",
        route="/v1/customers/by-ref/{source}/{customer_ref}",
        requested_customer_id=None,
    )
