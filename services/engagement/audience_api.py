"""The engagement service's internal HTTP API for segments and campaigns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

from runtime.errors import NotFound, Unprocessable
from runtime.service import RuntimeDep, SessionDep
from services.engagement.api import Cursor, Limit, engagement_of
from services.engagement.audiences import save_campaign, save_segment
from services.engagement.campaigns import CAMPAIGN_CONTACT
from services.engagement.models import Campaign, Segment
from services.engagement.segments import parse_rule
from services.engagement.store import EngagementStore

router = APIRouter(prefix="/internal", tags=["audiences"])
Actor = Annotated[str | None, Query(max_length=200, description="Who made the change, for the record.")]


class SegmentIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rule: dict[str, Any] = Field(description="The rule tree; see docs/segments.md.")

    @field_validator("rule")
    @classmethod
    def _parses(cls, rule: dict[str, Any]) -> dict[str, Any]:
        parse_rule(rule)  # a RuleError is a ValueError naming the bad part
        return rule


class Evaluation(BaseModel):
    status: Literal["running", "done"] = Field(description="Whether the backfill of the current rule is running.")
    evaluated: int = Field(description="Customers evaluated by the current backfill so far.")
    total: int = Field(description="Customers to evaluate (known when it started; final when done).")
    started_at: datetime | None
    finished_at: datetime | None


class SegmentView(SegmentIn):
    segment_id: str
    version: int = Field(description="Counts changes of the rule.")
    size: int = Field(description="Members now.")
    evaluated_at: datetime | None = Field(description="When membership was last evaluated for any customer.")
    evaluation: Evaluation
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


class SegmentPage(BaseModel):
    items: list[SegmentView]
    next_cursor: str | None


class MemberView(BaseModel):
    customer_id: str
    entered_at: datetime
    tier: str | None
    rm_id: str | None
    branch_id: str | None


class MemberPage(BaseModel):
    items: list[MemberView]
    next_cursor: str | None


def segment_view(segment: Segment, size: int) -> SegmentView:
    return SegmentView(
        segment_id=segment.segment_id,
        name=segment.name,
        description=segment.description,
        rule=segment.rule,
        version=segment.version,
        size=size,
        evaluated_at=segment.evaluated_at,
        evaluation=Evaluation(
            status="done" if segment.backfill_finished_at is not None else "running",
            evaluated=segment.backfill_done,
            total=segment.backfill_total,
            started_at=segment.backfill_started_at,
            finished_at=segment.backfill_finished_at,
        ),
        created_at=segment.created_at,
        updated_at=segment.updated_at,
        updated_by=segment.updated_by,
    )


@router.get("/segments", response_model=SegmentPage, summary="Segments by id, with size and evaluation progress")
async def list_segments(session: SessionDep, cursor: Cursor = None, limit: Limit = 100) -> SegmentPage:
    store = EngagementStore(session)
    segments = await store.list_segments(after=cursor, limit=limit)
    sizes = await store.segment_sizes(s.segment_id for s in segments)
    items = [segment_view(s, sizes[s.segment_id]) for s in segments]
    return SegmentPage(items=items, next_cursor=items[-1].segment_id if len(items) == limit else None)


@router.get("/segments/{segment_id}", response_model=SegmentView, summary="One segment")
async def get_segment(segment_id: str, session: SessionDep) -> SegmentView:
    store = EngagementStore(session)
    segment = await store.segment(segment_id)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment_view(segment, (await store.segment_sizes([segment_id]))[segment_id])


@router.put(
    "/segments/{segment_id}",
    response_model=SegmentView,
    summary="Define or change a segment; a new rule is evaluated for every customer in the background",
)
async def put_segment(
    segment_id: str, body: SegmentIn, session: SessionDep, runtime: RuntimeDep, actor: Actor = None
) -> SegmentView:
    store = EngagementStore(session)
    segment = await save_segment(
        store,
        segment_id,
        name=body.name,
        description=body.description,
        rule=body.rule,
        actor=actor,
        now=runtime.clock.now(),
    )
    return segment_view(segment, (await store.segment_sizes([segment_id]))[segment_id])


@router.get(
    "/segments/{segment_id}/members",
    response_model=MemberPage,
    summary="A segment's members in customer id order, optionally only an RM's or a branch's",
)
async def segment_members(
    segment_id: str,
    session: SessionDep,
    rm_id: str | None = None,
    branch_id: str | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> MemberPage:
    store = EngagementStore(session)
    if await store.segment(segment_id) is None:
        raise NotFound(f"no segment {segment_id}")
    rows = await store.members(segment_id, rm_id=rm_id, branch_id=branch_id, after=cursor, limit=limit)
    items = [
        MemberView(
            customer_id=m.customer_id, entered_at=m.entered_at, tier=c.tier, rm_id=c.rm_id, branch_id=c.branch_id
        )
        for m, c in rows
    ]
    return MemberPage(items=items, next_cursor=items[-1].customer_id if len(items) == limit else None)


# -- campaigns ------------------------------------------------------------------------------------


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    segment_id: str = Field(min_length=1, max_length=64)
    action: str = Field(
        min_length=1, max_length=64, description=f"A catalogue action, or `{CAMPAIGN_CONTACT}` with a script."
    )
    script: str | None = Field(default=None, max_length=2000, description="What the RM offers or says.")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    priority: int = Field(default=50, ge=1, le=100, description="Against other actions under the weekly cap.")
    due_days: int = Field(default=7, ge=0, le=365, description="Days from a task's creation to due.")
    daily_cap: int | None = Field(
        default=None, ge=1, le=1_000_000, description="New tasks per day overall; none: no cap."
    )
    branch_daily_cap: int | None = Field(
        default=None, ge=1, le=1_000_000, description="New tasks per day per branch; none: no cap."
    )

    @model_validator(mode="after")
    def _consistent(self) -> CampaignIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.action == CAMPAIGN_CONTACT and not self.script:
            raise ValueError(f"a {CAMPAIGN_CONTACT} campaign needs a script")
        return self


class CampaignView(CampaignIn):
    campaign_id: str
    status: Literal["scheduled", "running", "ended"]
    members_targeted_at: datetime | None = Field(description="When the members at start became targets.")
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


class CampaignPage(BaseModel):
    items: list[CampaignView]
    next_cursor: str | None


class TaskCounts(BaseModel):
    created: int = Field(description="Tasks the campaign created.")
    open: int = Field(description="Still open or in progress.")
    done_by_outcome: dict[str, int]
    dismissed: int


class CampaignStats(BaseModel):
    campaign_id: str
    targeted: int = Field(description="Customers the campaign aimed at (once each).")
    waiting: int = Field(description="Targets waiting for room under the daily caps.")
    suppressed: dict[str, int] = Field(description="Targets the contact policy stopped, by reason code.")
    expired: int = Field(description="Targets still waiting when the campaign ended.")
    tasks: TaskCounts
    conversion: float | None = Field(description="Share of done tasks with outcome `product_sold`; none before any.")


def campaign_view(campaign: Campaign, now: datetime) -> CampaignView:
    status: Literal["scheduled", "running", "ended"] = (
        "scheduled" if now < campaign.starts_at else "running" if now < campaign.ends_at else "ended"
    )
    fields = {name: getattr(campaign, name) for name in CampaignView.model_fields if name != "status"}
    return CampaignView(**fields, status=status)


@router.get("/campaigns", response_model=CampaignPage, summary="Campaigns by id")
async def list_campaigns(
    session: SessionDep, runtime: RuntimeDep, cursor: Cursor = None, limit: Limit = 100
) -> CampaignPage:
    campaigns = await EngagementStore(session).list_campaigns(after=cursor, limit=limit)
    now = runtime.clock.now()
    items = [campaign_view(c, now) for c in campaigns]
    return CampaignPage(items=items, next_cursor=items[-1].campaign_id if len(items) == limit else None)


@router.get("/campaigns/{campaign_id}", response_model=CampaignView, summary="One campaign")
async def get_campaign(campaign_id: str, session: SessionDep, runtime: RuntimeDep) -> CampaignView:
    campaign = await EngagementStore(session).campaign(campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    return campaign_view(campaign, runtime.clock.now())


@router.put(
    "/campaigns/{campaign_id}",
    response_model=CampaignView,
    summary="Define or change a campaign; at its start the segment's members become targets",
)
async def put_campaign(
    campaign_id: str, body: CampaignIn, request: Request, session: SessionDep, runtime: RuntimeDep, actor: Actor = None
) -> CampaignView:
    store = EngagementStore(session)
    if body.action != CAMPAIGN_CONTACT and body.action not in engagement_of(request).catalogue.actions:
        known = sorted([*engagement_of(request).catalogue.actions, CAMPAIGN_CONTACT])
        raise Unprocessable(f"unknown action {body.action!r}; one of {known}")
    if await store.segment(body.segment_id) is None:
        raise Unprocessable(f"no segment {body.segment_id}")
    now = runtime.clock.now()
    campaign = await save_campaign(store, campaign_id, body.model_dump(), actor=actor, now=now)
    return campaign_view(campaign, now)


@router.get(
    "/campaigns/{campaign_id}/stats",
    response_model=CampaignStats,
    summary="Targeted, suppressed by reason, waiting, tasks created and done by outcome, conversion",
)
async def campaign_stats(campaign_id: str, session: SessionDep) -> CampaignStats:
    store = EngagementStore(session)
    if await store.campaign(campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id}")
    targets, tasks = await store.campaign_stats(campaign_id)
    suppressed: dict[str, int] = {}
    for (status, code), n in targets.items():
        if status == "suppressed":
            suppressed[code or "unknown"] = suppressed.get(code or "unknown", 0) + n
    done = {outcome or "unknown": n for (status, outcome), n in tasks.items() if status == "done"}
    finished = sum(done.values())
    return CampaignStats(
        campaign_id=campaign_id,
        targeted=sum(targets.values()),
        waiting=sum(n for (status, _), n in targets.items() if status == "waiting"),
        suppressed=suppressed,
        expired=sum(n for (status, _), n in targets.items() if status == "expired"),
        tasks=TaskCounts(
            created=sum(tasks.values()),
            open=sum(n for (status, _), n in tasks.items() if status in ("open", "in_progress")),
            done_by_outcome=done,
            dismissed=sum(n for (status, _), n in tasks.items() if status == "dismissed"),
        ),
        conversion=done.get("product_sold", 0) / finished if finished else None,
    )
