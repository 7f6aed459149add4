"""Reports, the audit log and event intake under `/v1`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from contracts import EVENT_TYPES, INBOUND_TOPICS, InvalidEvent, parse_event
from runtime.db import transaction
from runtime.errors import Unprocessable, problem_response
from runtime.logging import correlation_id
from runtime.outbox import CORRELATION_HEADER, OutboxMessage, write_outbox
from runtime.service import RuntimeDep, SessionDep
from services.gateway.api import Limit, UpstreamsDep, problems
from services.gateway.auth import Principal, PrincipalDep, Role, admitting, require
from services.gateway.store import OUTBOX, audit_page

router = APIRouter(prefix="/v1")
REPORT_READERS = (Role.SUPERVISOR, Role.ANALYST, Role.ADMIN)


class DistributionLine(BaseModel):
    name: str
    floor_cny: str
    customers: int
    customer_share: str
    aum_cny: str
    aum_share: str
    on_watch: int | None = None


class TierDistribution(BaseModel):
    measure: str = Field(description="What tiers are decided on; bands are by current AUM.")
    customers: int
    aum_cny: str
    tiers: list[DistributionLine]
    bands: list[DistributionLine] = Field(description="The AUM bands of the bank's own customer-structure report.")


@router.get(
    "/reports/tier-distribution",
    response_model=TierDistribution,
    tags=["reports"],
    summary="Customers and AUM per tier and per AUM band",
    description="Per tier: customers, share, AUM (CNY, exact) and share of AUM, and how many are on watch; the "
    "same per AUM band (0 to 50k, 50k to 200k, 200k and above by default) to compare with the bank's own report.",
    responses=problems(403, 503),
)
async def tier_distribution(principal: PrincipalDep, clients: UpstreamsDep) -> TierDistribution:
    require(principal, *REPORT_READERS)
    found = await clients.scoring.get_required("/internal/reports/tier-distribution", "report")
    return TierDistribution.model_validate(found)


@router.get(
    "/reports/data-quality",
    tags=["reports"],
    summary="Per source: last event and lag; snapshot reconciliation differences",
    responses=problems(403, 503),
)
async def data_quality(principal: PrincipalDep, clients: UpstreamsDep) -> dict[str, Any]:
    require(principal, *REPORT_READERS)
    found: dict[str, Any] = await clients.profile.get_required("/internal/data-quality", "report")
    return found


class AuditEntry(BaseModel):
    id: int
    at: datetime
    subject: str
    role: str
    customer_id: str | None
    route: str
    method: str
    status: int


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


@router.get(
    "/audit",
    response_model=AuditPage,
    tags=["admin"],
    summary="Who read or changed which customer, when (admin)",
    responses=problems(403, 422),
)
async def audit_log(
    principal: PrincipalDep,
    session: SessionDep,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Limit = 100,
) -> AuditPage:
    require(principal, Role.ADMIN)
    rows = await audit_page(
        session,
        customer_id=customer_id,
        subject=subject,
        since=since,
        before_id=int(cursor) if cursor else None,
        limit=limit,
    )
    items = [AuditEntry.model_validate(r, from_attributes=True) for r in rows]
    return AuditPage(items=items, next_cursor=str(items[-1].id) if len(items) == limit else None)


class EventResult(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    id: str | None = Field(description="The event's `id`, when it had one.")
    accepted: bool
    topic: str | None = Field(default=None, description="Where it was produced, when accepted.")
    error: str | None = Field(default=None, description="Why it was refused: the field and the rule.")


class EventResults(BaseModel):
    accepted: int
    refused: int
    results: list[EventResult]


EXAMPLE_EVENT = {
    "specversion": "1.0",
    "id": "0b9a3a62-6c1e-4b8e-9d0a-5c1f2f0e7a11",
    "source": "core-deposits",
    "type": "bank.account.balance.v1",
    "time": "2026-11-22T09:30:00Z",
    "datacontenttype": "application/json",
    "data": {
        "account_ref": "A-1001",
        "customer_ref": "C-778",
        "balance": "350000.00",
        "currency": "CNY",
        "as_of": "2026-11-22T09:29:58Z",
        "version": 12,
    },
}


@router.post(
    "/events",
    response_model=EventResults,
    tags=["events"],
    summary="Publish bank events over HTTP",
    description="A JSON array of CloudEvents (structured mode) of the inbound types (`bank.*`), at most "
    "`C360_GATEWAY__MAX_EVENTS_PER_REQUEST`. Each is validated against the contracts on its own; the valid "
    "ones are stored in the gateway's outbox in one transaction and produced to their topic, keyed as the "
    "contract says, by the relay (at least once; consumers are idempotent on `source` + `id`). The answer "
    "reports each event. A request with nothing valid is 422.",
    responses={**problems(403, 422), 200: {"description": "Each event's result."}},
)
async def post_events(
    request: Request,
    principal: Annotated[Principal, admitting(Role.SERVICE, Role.ADMIN)],
    runtime: RuntimeDep,
    events: Annotated[list[Any], Body(examples=[[EXAMPLE_EVENT]])],
) -> JSONResponse:
    limit: int = runtime.extras["max_events_per_request"]
    if not events:
        raise Unprocessable("the request holds no events")
    if len(events) > limit:
        raise Unprocessable(f"at most {limit} events per request; this one holds {len(events)}")
    results: list[EventResult] = []
    messages: list[OutboxMessage] = []
    for index, raw in enumerate(events):
        event_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        try:
            type_ = raw.get("type") if isinstance(raw, dict) else None
            spec = EVENT_TYPES.get(type_) if isinstance(type_, str) else None
            if spec is None or spec.topic not in INBOUND_TOPICS:
                raise InvalidEvent("type: not an inbound event type of the contract (bank.*)")
            parsed = parse_event(json.dumps(raw).encode(), topic=spec.topic)
        except InvalidEvent as exc:
            results.append(EventResult(index=index, id=event_id, accepted=False, error=exc.reason))
            continue
        # The request's correlation id follows each event through profile, scoring and engagement.
        headers = {CORRELATION_HEADER: correlation_id.get() or parsed.envelope.id}
        messages.append(OutboxMessage(topic=spec.topic, key=parsed.key, event=parsed.cloud_event(), headers=headers))
        results.append(EventResult(index=index, id=event_id, accepted=True, topic=spec.topic))
    accepted = len(messages)
    body = EventResults(accepted=accepted, refused=len(events) - accepted, results=results)
    if not messages:
        return problem_response(
            422,
            "validation",
            "No valid event",
            "none of the events is valid; `results` says why for each",
            request.url.path,
            results=[r.model_dump() for r in results],
        )
    async with transaction(runtime.sessions) as session:
        await write_outbox(session, OUTBOX, messages)
    return JSONResponse(body.model_dump(), status_code=200)
