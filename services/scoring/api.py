"""The scoring service's internal HTTP API: a customer's tier (with watch status and history),
scores with their reasons, and the tier-distribution report."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from contracts import ScoreReason
from runtime.errors import NotFound
from runtime.service import ReadSessionDep, RuntimeDep, SessionDep
from services.scoring.assessor import Assessor
from services.scoring.models import CustomerScore, CustomerTier
from services.scoring.policy import TierPolicy, TierState, watch_ends
from services.scoring.scores import kept_reasons
from services.scoring.store import DistributionRow, ScoringStore, standing_row

router = APIRouter(prefix="/internal", tags=["tiers and scores"])
SHARE = Decimal("0.0001")


class TierChangeView(BaseModel):
    id: int
    customer_id: str
    from_tier: str | None
    to_tier: str
    reason: str
    measure_cny: Decimal
    effective_at: datetime


class WatchView(BaseModel):
    since: datetime = Field(description="Since when the measure has been below the tier's floor.")
    floor_cny: Decimal = Field(description="The floor of the tier held.")
    downgrade_at: datetime = Field(description="When the downgrade takes effect unless the measure climbs back.")


class TierSummary(BaseModel):
    customer_id: str = Field(description="The customer answered for: the survivor when the id asked was merged.")
    tier: str
    since: datetime = Field(description="When the customer entered the tier.")
    measure: str = Field(description="The profile figure the policy decides on.")
    measure_cny: Decimal
    aum_cny: Decimal
    aum_avg_30d_cny: Decimal
    rm_grade: str | None = Field(description="The RM grade the tier needs; null when the branch serves it.")
    watch: WatchView | None = Field(description="Set while the customer is on watch (the exit mechanism).")


class TierView(TierSummary):
    history: list[TierChangeView] = Field(description="Tier changes and watch periods, newest first.")


class ScoresView(BaseModel):
    customer_id: str
    value_score: int = Field(ge=0, le=100)
    churn_risk: float = Field(ge=0, le=1)
    risk_flags: list[str]
    reasons: list[ScoreReason] = Field(description="Each factor's contribution, in words an RM can read.")
    computed_at: datetime


class DistributionLine(BaseModel):
    name: str = Field(description="The tier, or the AUM band such as `50,000 to 200,000`.")
    floor_cny: Decimal
    customers: int
    customer_share: Decimal = Field(description="Share of all customers, 0 to 1.")
    aum_cny: Decimal = Field(description="Current AUM of these customers.")
    aum_share: Decimal = Field(description="Share of all AUM, 0 to 1.")
    on_watch: int | None = Field(default=None, description="Customers of the tier on watch (tiers only).")


class TierDistribution(BaseModel):
    measure: str = Field(description="What tiers are decided on; bands are always by current AUM.")
    customers: int
    aum_cny: Decimal
    tiers: list[DistributionLine]
    bands: list[DistributionLine]


def assessor_of(request: Request) -> Assessor:
    assessor: Assessor = request.app.state.assessor
    return assessor


class StandingView(BaseModel):
    """A customer's tier and scores in one answer, for the gateway's customer view."""

    customer_id: str = Field(description="The customer answered for: the survivor when the id asked was merged.")
    tier: TierSummary | None = Field(description="Null while the customer has no tier yet; without the history.")
    scores: ScoresView | None = Field(description="Null while the customer has no scores yet.")


def _tier_summary(policy: TierPolicy, answered: str, row: CustomerTier | Any) -> TierSummary:
    rule = policy.find(row.tier)
    ends = watch_ends(policy, TierState(row.tier, row.since, row.watch_since))
    watch = (
        WatchView(since=row.watch_since, floor_cny=rule.floor if rule else Decimal(0), downgrade_at=ends)
        if row.watch_since is not None and ends is not None
        else None
    )
    return TierSummary(
        customer_id=answered,
        tier=row.tier,
        since=row.since,
        measure=policy.measure,
        measure_cny=row.measure_cny,
        aum_cny=row.aum_cny,
        aum_avg_30d_cny=row.aum_avg_30d_cny,
        rm_grade=rule.rm_grade if rule else None,
        watch=watch,
    )


def _scores_view(answered: str, row: CustomerScore | Any) -> ScoresView:
    return ScoresView(
        customer_id=answered,
        value_score=row.value_score,
        churn_risk=row.churn_risk,
        risk_flags=list(row.risk_flags),
        reasons=kept_reasons(row.reasons),
        computed_at=row.computed_at,
    )


@router.get("/customers/{customer_id}/tier", response_model=TierView, summary="A customer's tier, watch and history")
async def get_tier(customer_id: str, session: ReadSessionDep, request: Request) -> TierView:
    store = ScoringStore(session)
    answered = await store.resolve(customer_id)
    row = await store.tier(answered)
    if row is None:
        raise NotFound(f"no tier for customer {customer_id}")
    history = await store.history([answered, *await store.absorbed(answered)])
    return TierView(
        **dict(_tier_summary(assessor_of(request).policy, answered, row)),
        history=[TierChangeView.model_validate(h, from_attributes=True) for h in history],
    )


@router.get("/customers/{customer_id}/scores", response_model=ScoresView, summary="A customer's scores and reasons")
async def get_scores(customer_id: str, session: ReadSessionDep) -> ScoresView:
    store = ScoringStore(session)
    answered = await store.resolve(customer_id)
    row = await store.score(answered)
    if row is None:
        raise NotFound(f"no scores for customer {customer_id}")
    return _scores_view(answered, row)


@router.get(
    "/customers/{customer_id}/standing",
    response_model=StandingView,
    summary="A customer's tier and scores together",
    description="What `/tier` (without the history) and `/scores` answer, in one call and one statement; "
    "either is null while the customer has none.",
)
async def get_standing(customer_id: str, runtime: RuntimeDep, request: Request) -> StandingView:
    row = await standing_row(runtime.engine, customer_id)
    answered = row.customer_id
    return StandingView(
        customer_id=answered,
        tier=_tier_summary(assessor_of(request).policy, answered, row) if row.tier_of is not None else None,
        scores=_scores_view(answered, row) if row.scores_of is not None else None,
    )


def _share(part: Decimal | int, whole: Decimal | int) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(SHARE) if whole else Decimal(0).quantize(SHARE)


def _line(
    name: str, floor: Decimal, row: DistributionRow | None, customers: int, aum: Decimal, on_watch: int | None = None
) -> DistributionLine:
    count = row.customers if row else 0
    total = row.aum_cny if row else Decimal("0.00")
    return DistributionLine(
        name=name,
        floor_cny=floor,
        customers=count,
        customer_share=_share(count, customers),
        aum_cny=total,
        aum_share=_share(total, aum),
        on_watch=on_watch,
    )


@router.get(
    "/reports/tier-distribution",
    response_model=TierDistribution,
    summary="Customers and AUM per tier and per AUM band",
    description="Per tier (in policy order) and per AUM band of the policy's `report_bands`: the number of "
    "customers, their share, their current AUM and its share, as in a bank's own customer-structure report.",
)
async def tier_distribution(session: SessionDep, request: Request) -> TierDistribution:
    policy = assessor_of(request).policy
    found = await ScoringStore(session).distribution(policy.report_bands)
    by_tier, by_band, watching = found.by_tier, found.by_band, found.watching
    customers = sum(row.customers for row in by_tier.values())
    aum = sum((row.aum_cny for row in by_tier.values()), Decimal("0.00"))
    tiers = [_line(t.name, t.floor, by_tier.get(t.name), customers, aum, watching.get(t.name, 0)) for t in policy.tiers]
    # Customers still in a tier a changed policy no longer has, until a re-score moves them.
    names = {t.name for t in policy.tiers}
    tiers += [
        _line(name, Decimal(0), row, customers, aum, watching.get(name, 0))
        for name, row in sorted(by_tier.items())
        if name not in names
    ]
    bands = [
        _line(policy.band_label(i), floor, by_band.get(i), customers, aum)
        for i, floor in enumerate(policy.report_bands)
    ]
    return TierDistribution(measure=policy.measure, customers=customers, aum_cny=aum, tiers=tiers, bands=bands)
