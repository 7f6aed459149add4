"""Segments and campaigns under `/v1`: analysts define audiences and campaigns; members are scoped.

Definitions and statistics carry no personal data; a members page names customers, so it is
narrowed to the caller's scope (an `rm` sees their own customers among the members, a
`supervisor` their branch's) and recorded in the audit log like any list of customers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import AwareDatetime, BaseModel, Field

from runtime.errors import NotFound
from runtime.service import RuntimeDep
from services.gateway.api import ID_PATTERN, Cursor, Limit, UpstreamsDep, audited, problems
from services.gateway.auth import Principal, PrincipalDep, Role, admitting, require
from services.gateway.views import scope_filters

router = APIRouter(prefix="/v1")
SegmentId = Annotated[str, Path(max_length=64, pattern=ID_PATTERN)]
CampaignId = Annotated[str, Path(max_length=64, pattern=ID_PATTERN)]
READERS = (Role.RM, Role.SUPERVISOR, Role.ANALYST, Role.ADMIN)
AUTHORS = (Role.ANALYST, Role.ADMIN)

RULE_EXAMPLE = {
    "all": [
        {"field": "tier", "op": "in", "value": ["vip", "wealth"]},
        {"field": "aum_avg_30d_cny", "op": "between", "value": ["180000", "200000"]},
        {"not": {"has_tag": "dormant"}},
    ]
}


class SegmentIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Close to VIP"])
    description: str | None = Field(default=None, max_length=2000)
    rule: dict[str, Any] = Field(
        description="A tree of `all` / `any` / `not` over comparisons (`eq`, `in`, `gte`, `lt`, `between`) "
        "of customer fields, and `has_tag`, `holds_product`, `has_flag`; see docs/segments.md. "
        "An invalid rule is refused with 422 naming the bad part.",
        examples=[RULE_EXAMPLE],
    )


class Evaluation(BaseModel):
    status: Literal["running", "done"]
    evaluated: int
    total: int
    started_at: datetime | None
    finished_at: datetime | None


class SegmentView(SegmentIn):
    segment_id: str
    version: int = Field(description="Counts changes of the rule.")
    size: int = Field(description="Members now.")
    evaluated_at: datetime | None = Field(description="When membership was last evaluated.")
    evaluation: Evaluation = Field(description="The background evaluation of every customer after a rule change.")
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


class SegmentPage(BaseModel):
    items: list[SegmentView]
    next_cursor: str | None


class Member(BaseModel):
    customer_id: str
    entered_at: datetime
    tier: str | None
    rm_id: str | None
    branch_id: str | None


class MemberPage(BaseModel):
    items: list[Member]
    next_cursor: str | None


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Time-deposit renewals, spring"])
    segment_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    action: str = Field(
        min_length=1,
        max_length=64,
        description="An action of the catalogue, or `campaign_contact` with a `script`.",
        examples=["campaign_contact"],
    )
    script: str | None = Field(default=None, max_length=2000, examples=["Offer the 3-year deposit at 2.6%"])
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    priority: int = Field(default=50, ge=1, le=100)
    due_days: int = Field(default=7, ge=0, le=365)
    daily_cap: int | None = Field(default=None, ge=1, le=1_000_000, description="New tasks per day overall.")
    branch_daily_cap: int | None = Field(default=None, ge=1, le=1_000_000, description="New tasks per day per branch.")


class CampaignView(CampaignIn):
    campaign_id: str
    status: Literal["scheduled", "running", "ended"]
    members_targeted_at: datetime | None
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


class CampaignPage(BaseModel):
    items: list[CampaignView]
    next_cursor: str | None


class TaskCounts(BaseModel):
    created: int
    open: int
    done_by_outcome: dict[str, int]
    dismissed: int


class CampaignStats(BaseModel):
    campaign_id: str
    targeted: int = Field(description="Customers the campaign aimed at, once each.")
    waiting: int = Field(description="Targets waiting for room under the daily caps (highest value goes first).")
    suppressed: dict[str, int] = Field(description="Targets the contact policy stopped, by reason code.")
    expired: int = Field(description="Targets still waiting when the campaign ended.")
    tasks: TaskCounts
    conversion: float | None = Field(description="Share of done tasks with outcome `product_sold`.")


def _page(limit: int, cursor: str | None) -> dict[str, Any]:
    return {k: v for k, v in {"limit": limit, "cursor": cursor}.items() if v is not None}


@router.get(
    "/segments",
    response_model=SegmentPage,
    tags=["segments"],
    summary="Analyst-defined audiences",
    description="Each segment with its rule, size, and the progress of its evaluation.",
    responses=problems(403, 503),
)
async def list_segments(
    principal: PrincipalDep, clients: UpstreamsDep, cursor: Cursor = None, limit: Limit = 50
) -> SegmentPage:
    require(principal, *READERS)
    found = await clients.engagement.get_required("/internal/segments", "segments", _page(limit, cursor))
    return SegmentPage.model_validate(found)


@router.get(
    "/segments/{segment_id}",
    response_model=SegmentView,
    tags=["segments"],
    summary="One segment: rule, size, when last evaluated",
    responses=problems(403, 404, 503),
)
async def get_segment(segment_id: SegmentId, principal: PrincipalDep, clients: UpstreamsDep) -> SegmentView:
    require(principal, *READERS)
    found = await clients.engagement.get(f"/internal/segments/{segment_id}")
    if found is None:
        raise NotFound("segment not found")
    return SegmentView.model_validate(found)


@router.put(
    "/segments/{segment_id}",
    response_model=SegmentView,
    tags=["segments"],
    summary="Define or change a segment (analyst, admin)",
    description="Membership is live: it is evaluated whenever a customer's profile, tier or scores change. A new "
    "or changed rule is evaluated for every customer in the background, in batches; `evaluation` shows the "
    "progress. Entering and leaving are published as `c360.segment.membership.v1`.",
    responses=problems(403, 422, 503),
)
async def put_segment(
    segment_id: SegmentId,
    body: SegmentIn,
    principal: Annotated[Principal, admitting(*AUTHORS)],
    clients: UpstreamsDep,
) -> SegmentView:
    saved = await clients.engagement.request(
        "PUT", f"/internal/segments/{segment_id}", params={"actor": principal.subject}, json=body.model_dump()
    )
    return SegmentView.model_validate(saved)


@router.get(
    "/segments/{segment_id}/members",
    response_model=MemberPage,
    tags=["segments"],
    summary="A segment's members, in the caller's scope",
    description="Members in customer id order. An `rm` sees only their own customers among them, a `supervisor` "
    "their branch's. Every customer the page names is recorded in the audit log.",
    responses=problems(403, 404, 503),
)
async def segment_members(
    segment_id: SegmentId,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    clients: UpstreamsDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> MemberPage:
    require(principal, *READERS)
    scoped = scope_filters(principal, None, None)
    assert scoped is not None  # asking for no particular RM or branch is always in scope

    async def call() -> MemberPage:
        params = _page(limit, cursor)
        params |= {k: v for k, v in zip(("rm_id", "branch_id"), scoped, strict=True) if v is not None}
        found = await clients.engagement.get(f"/internal/segments/{segment_id}/members", params)
        if found is None:
            raise NotFound("segment not found")
        return MemberPage.model_validate(found)

    return await audited(
        runtime,
        principal,
        call(),
        route="/v1/segments/{segment_id}/members",
        named=lambda page: [m.customer_id for m in page.items],
    )


@router.get(
    "/campaigns",
    response_model=CampaignPage,
    tags=["campaigns"],
    summary="Campaigns",
    responses=problems(403, 503),
)
async def list_campaigns(
    principal: PrincipalDep, clients: UpstreamsDep, cursor: Cursor = None, limit: Limit = 50
) -> CampaignPage:
    require(principal, Role.SUPERVISOR, Role.ANALYST, Role.ADMIN)
    found = await clients.engagement.get_required("/internal/campaigns", "campaigns", _page(limit, cursor))
    return CampaignPage.model_validate(found)


@router.put(
    "/campaigns/{campaign_id}",
    response_model=CampaignView,
    tags=["campaigns"],
    summary="Define or change a campaign (analyst, admin)",
    description="A segment, an action (from the catalogue, or `campaign_contact` with a script), a window, a "
    "priority and volume caps per day overall and per branch. At the start the segment's members become "
    "targets; a customer entering the segment while the campaign runs becomes one then (once per campaign). "
    "Every target goes through the contact policy (open task, cooldown, consent for marketing, weekly cap) and "
    "every suppression is recorded; targets beyond the day's caps wait for the next day, highest value first.",
    responses=problems(403, 422, 503),
)
async def put_campaign(
    campaign_id: CampaignId,
    body: CampaignIn,
    principal: Annotated[Principal, admitting(*AUTHORS)],
    clients: UpstreamsDep,
) -> CampaignView:
    saved = await clients.engagement.request(
        "PUT",
        f"/internal/campaigns/{campaign_id}",
        params={"actor": principal.subject},
        json=body.model_dump(mode="json"),
    )
    return CampaignView.model_validate(saved)


@router.get(
    "/campaigns/{campaign_id}/stats",
    response_model=CampaignStats,
    tags=["campaigns"],
    summary="A campaign's results",
    description="Targeted, suppressed by reason, waiting for volume, expired, tasks created, done by outcome, "
    "and conversion (the share of done tasks with outcome `product_sold`).",
    responses=problems(403, 404, 503),
)
async def campaign_stats(campaign_id: CampaignId, principal: PrincipalDep, clients: UpstreamsDep) -> CampaignStats:
    require(principal, Role.SUPERVISOR, Role.ANALYST, Role.ADMIN)
    found = await clients.engagement.get(f"/internal/campaigns/{campaign_id}/stats")
    if found is None:
        raise NotFound("campaign not found")
    return CampaignStats.model_validate(found)
