"""Public customer routes under `/v1`: the 360 view, search, timeline, and the admin's split and
erasure. Each route checks the role, calls one view function, audits and answers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from runtime.errors import NotFound, Problem, ProblemError
from runtime.service import RuntimeDep, ServiceRuntime
from services.gateway.auth import Principal, PrincipalDep, Role, admitting, require
from services.gateway.clients import Upstreams
from services.gateway.store import record_audit
from services.gateway.views import (
    Customer360,
    CustomerPage,
    TimelinePage,
    customer_360,
    customer_list,
    scoped_customer,
    timeline,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["customers"])
T = TypeVar("T")

READERS = (Role.RM, Role.SUPERVISOR, Role.ANALYST, Role.ADMIN)
ID_PATTERN = r"^[A-Za-z0-9._-]+$"
REF_PATTERN = r"^[^\x00-\x1f\x7f/?#]+$"
CustomerId = Annotated[
    str,
    Path(
        max_length=64,
        pattern=ID_PATTERN,
        description="A golden customer id; a merged id answers for the survivor.",
        examples=["C3F2A9B01D4E5C6A7"],
    ),
]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page.")]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route may give, all `application/problem+json`."""
    text = {
        401: "Missing, expired or invalid bearer token.",
        403: "The caller's role may not use this route.",
        404: "No such resource, or not in the caller's scope (the two are not told apart).",
        409: "The change conflicts with the resource's state.",
        422: "The request is invalid; `errors` says where.",
        429: "Too many requests from this client; see `Retry-After`.",
        503: "A backing service did not answer in time.",
    }
    return {s: {"description": text[s], "model": Problem} for s in (401, 429, *statuses)}


async def upstreams(runtime: RuntimeDep) -> Upstreams:
    clients: Upstreams = runtime.extras["upstreams"]
    return clients


UpstreamsDep = Annotated[Upstreams, Depends(upstreams)]


async def audited(
    runtime: ServiceRuntime,
    principal: Principal,
    call: Awaitable[T],
    *,
    route: str,
    method: str = "GET",
    named: Callable[[T], Sequence[str | None]],
    requested: str | None = None,
) -> T:
    """Run `call` and audit it, whatever its outcome, before answering.

    An answer is only returned once its audit record is durable. A failure is audited with its
    status; if that audit write fails too, the caller still gets the original error.
    """
    try:
        result = await call
    except Exception as exc:
        status = exc.status if isinstance(exc, ProblemError) else 500
        try:
            await record_audit(runtime, principal, [requested], route=route, method=method, status=status)
        except Exception:
            log.exception("audit.write_failed", extra={"route": route, "status": status})
        raise
    await record_audit(runtime, principal, named(result), route=route, method=method, status=200)
    return result


@router.get(
    "/customers",
    response_model=CustomerPage,
    summary="Search and list customers",
    description="By name prefix (`q`), `tier`, `rm_id` and `branch_id`, in customer id order, a page at a time. "
    "An `rm` sees only their own customers and a `supervisor` only their branch: filters outside the "
    "caller's scope give an empty page. Every customer listed is recorded in the audit log.",
    responses=problems(403, 422, 503),
)
async def list_customers(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    clients: UpstreamsDep,
    q: Annotated[str | None, Query(max_length=100, description="Name prefix, case-insensitive.")] = None,
    tier: Annotated[str | None, Query(max_length=64, examples=["vip"])] = None,
    rm_id: Annotated[str | None, Query(max_length=64)] = None,
    branch_id: Annotated[str | None, Query(max_length=64, examples=["BR01"])] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> CustomerPage:
    require(principal, *READERS)
    call = customer_list(
        clients, principal, q=q, tier=tier, rm_id=rm_id, branch_id=branch_id, cursor=cursor, limit=limit
    )
    return await audited(
        runtime, principal, call, route="/v1/customers", named=lambda page: [i.customer_id for i in page.items]
    )


@router.get(
    "/customers/{customer_id}",
    response_model=Customer360,
    summary="The 360 view of a customer",
    description="Identity (masked per role), linked source records, accounts, AUM and liabilities in CNY, tier "
    "with its grace status, scores with their reasons, tags, the relationship manager, open tasks and data "
    "freshness, fetched from the three services at once. A merged id answers with the survivor.",
    responses=problems(403, 404, 503),
)
async def get_customer(
    customer_id: CustomerId, principal: PrincipalDep, runtime: RuntimeDep, clients: UpstreamsDep
) -> Customer360:
    require(principal, *READERS)
    call = customer_360(
        clients, principal, f"/internal/customers/{customer_id}", runtime.extras["unmasked_roles"], customer_id
    )
    return await audited(
        runtime,
        principal,
        call,
        route="/v1/customers/{customer_id}",
        named=lambda view: [view.customer_id],
        requested=customer_id,
    )


@router.get(
    "/customers/by-ref/{source}/{customer_ref}",
    response_model=Customer360,
    summary="Look a customer up by a source system's own id",
    responses=problems(403, 404, 503),
)
async def get_customer_by_ref(
    source: Annotated[str, Path(max_length=64, pattern=REF_PATTERN, examples=["core-deposits"])],
    customer_ref: Annotated[str, Path(max_length=128, pattern=REF_PATTERN, examples=["C-778"])],
    principal: PrincipalDep,
    runtime: RuntimeDep,
    clients: UpstreamsDep,
) -> Customer360:
    require(principal, *READERS)
    path = f"/internal/customers/by-ref/{quote(source, safe='')}/{quote(customer_ref, safe='')}"
    call = customer_360(clients, principal, path, runtime.extras["unmasked_roles"])
    return await audited(
        runtime, principal, call, route="/v1/customers/by-ref/{source}/{customer_ref}", named=lambda v: [v.customer_id]
    )


@router.get(
    "/customers/{customer_id}/timeline",
    response_model=TimelinePage,
    summary="What happened to a customer, newest first",
    description="Accounts opened and closed, large transactions (from `C360_GATEWAY__LARGE_TRANSACTION_CNY`), "
    "interactions, merges and splits, reconciliation findings, tier changes and tasks, under one cursor.",
    responses=problems(403, 404, 422, 503),
)
async def get_timeline(
    customer_id: CustomerId,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    clients: UpstreamsDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> TimelinePage:
    require(principal, *READERS)

    async def call() -> tuple[str, TimelinePage]:
        profile, _ = await scoped_customer(clients, principal, f"/internal/customers/{customer_id}")
        cid = profile["customer_id"]
        page = await timeline(
            clients, cid, cursor=cursor, limit=limit, large_from=runtime.extras["large_transaction_cny"]
        )
        return cid, page

    _, page = await audited(
        runtime,
        principal,
        call(),
        route="/v1/customers/{customer_id}/timeline",
        named=lambda result: [result[0]],
        requested=customer_id,
    )
    return page


class SourceRecordRef(BaseModel):
    source: str = Field(max_length=64, examples=["wealth"])
    customer_ref: str = Field(max_length=128, examples=["W-000123"])


class SplitIn(BaseModel):
    source_records: list[SourceRecordRef] = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=2000, examples=["two people share a mistyped identity number"])


class SplitOut(BaseModel):
    customer_id: str
    new_customer_id: str
    source_records: list[SourceRecordRef]


@router.post(
    "/customers/{customer_id}/split",
    response_model=SplitOut,
    status_code=201,
    tags=["admin"],
    summary="Undo a wrong merge: move named source records to a new customer (admin)",
    description="The records, and the accounts, balances and history that came from them, move to a new "
    "golden customer; the split is remembered so the records do not merge again. Recorded with the admin's "
    "identity and reason; `c360.customer.split.v1` is published.",
    responses=problems(403, 404, 422, 503),
)
async def split_customer(
    customer_id: CustomerId,
    body: SplitIn,
    principal: Annotated[Principal, admitting(Role.ADMIN)],
    runtime: RuntimeDep,
    clients: UpstreamsDep,
) -> SplitOut:

    async def call() -> SplitOut:
        payload = {**body.model_dump(), "actor": principal.subject}
        result = await clients.profile.request("POST", f"/internal/customers/{customer_id}/split", json=payload)
        if result is None:
            raise NotFound("customer not found")
        return SplitOut.model_validate(result)

    return await audited(
        runtime,
        principal,
        call(),
        route="/v1/customers/{customer_id}/split",
        method="POST",
        named=lambda r: [r.customer_id, r.new_customer_id],
        requested=customer_id,
    )


@router.delete(
    "/customers/{customer_id}",
    status_code=204,
    tags=["admin"],
    summary="Erase a customer's personal data everywhere (admin)",
    description="The right to deletion: profile removes names, birth date, contact data and notes (figures "
    "stay anonymous) and publishes `c360.customer.erased.v1`, on which scoring drops the birth date it kept "
    "and engagement the outcomes that could name the person. The audit log keeps only the customer id.",
    responses=problems(403, 404, 503),
)
async def erase_customer(
    customer_id: CustomerId, principal: PrincipalDep, runtime: RuntimeDep, clients: UpstreamsDep
) -> Response:
    require(principal, Role.ADMIN)

    async def call() -> str:
        result = await clients.profile.request(
            "DELETE", f"/internal/customers/{customer_id}", params={"actor": principal.subject}
        )
        if result is None:
            raise NotFound("customer not found")
        return str(result["customer_id"])

    await audited(
        runtime,
        principal,
        call(),
        route="/v1/customers/{customer_id}",
        method="DELETE",
        named=lambda cid: [cid],
        requested=customer_id,
    )
    return Response(status_code=204)
