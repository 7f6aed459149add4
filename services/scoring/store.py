"""All scoring SQL; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from runtime.db import OneStatementRead, one_of, upsert_rows
from services.scoring.models import CustomerScore, CustomerTier, MergedCustomer, TierChange
from services.scoring.policy import TierPolicy

TIER_COLUMNS = (
    "tier",
    "since",
    "watch_since",
    "measure_cny",
    "aum_cny",
    "aum_avg_30d_cny",
    "branch_id",
    "profile",
    "profile_at",
    "updated_at",
)
SCORE_COLUMNS = (
    "value_score",
    "churn_risk",
    "risk_flags",
    "reasons",
    "computed_at",
    "published_value_score",
    "published_churn_risk",
    "published_risk_flags",
    "published_at",
)
# Personal data a stored profile may carry; erasure removes it and keeps the figures.
PERSONAL_PROFILE_FIELDS = ("birth_date",)


def _standing_statement() -> Select[Any]:
    merged = select(MergedCustomer.merged_into).where(MergedCustomer.customer_id == bindparam("customer_id"))
    answered = select(func.coalesce(merged.scalar_subquery(), bindparam("customer_id")).label("customer_id")).subquery()
    return (
        select(
            answered.c.customer_id,
            CustomerTier.customer_id.label("tier_of"),
            CustomerTier.tier,
            CustomerTier.since,
            CustomerTier.watch_since,
            CustomerTier.measure_cny,
            CustomerTier.aum_cny,
            CustomerTier.aum_avg_30d_cny,
            CustomerScore.customer_id.label("scores_of"),
            CustomerScore.value_score,
            CustomerScore.churn_risk,
            CustomerScore.risk_flags,
            CustomerScore.reasons,
            CustomerScore.computed_at,
        )
        .select_from(answered)
        .outerjoin(CustomerTier, CustomerTier.customer_id == answered.c.customer_id)
        .outerjoin(CustomerScore, CustomerScore.customer_id == answered.c.customer_id)
    )


# Built and compiled once, run on the driver (runtime.db.OneStatementRead): the gateway reads a
# standing on every view.
_STANDING = OneStatementRead(_standing_statement(), "Standing")


async def standing_row(engine: AsyncEngine, customer_id: str) -> Any:
    """In one statement: the customer that answers for `customer_id` (the survivor when it was
    merged) with the columns of its tier and its scores that the API shows; `tier_of` and
    `scores_of` are null when it has none. The kept profile is not read."""
    return await _STANDING.one_or_none(engine, customer_id=customer_id)


@dataclass(frozen=True)
class HeldTier:
    """A customer's tier as kept: held since when, on watch since when, decided on which profile."""

    tier: str
    since: datetime
    watch_since: datetime | None
    profile_at: datetime | None


@dataclass(frozen=True)
class PublishedScores:
    """The scores last published for a customer (all None before the first)."""

    published_value_score: int | None
    published_churn_risk: float | None
    published_risk_flags: list[str] | None
    published_at: datetime | None


@dataclass(frozen=True)
class DistributionRow:
    key: str
    customers: int
    aum_cny: Decimal

    def __add__(self, other: DistributionRow) -> DistributionRow:
        return DistributionRow(self.key, self.customers + other.customers, self.aum_cny + other.aum_cny)


@dataclass(frozen=True)
class Distribution:
    """Customers and AUM per tier and per band of current AUM, and per tier how many are on watch."""

    by_tier: dict[str, DistributionRow]
    by_band: dict[int, DistributionRow]
    watching: dict[str, int]


class ScoringStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- current tiers and scores ----------------------------------------------------------------

    async def tiers(self, customer_ids: Iterable[str]) -> dict[str, HeldTier]:
        """The tier each customer holds, its rows locked for this transaction (in id order, so
        never a deadlock). Without the kept profile: deciding needs only the new one."""
        ids = sorted(set(customer_ids))
        t = CustomerTier.__table__.c
        rows = await self.session.execute(
            select(t.customer_id, t.tier, t.since, t.watch_since, t.profile_at)
            .where(one_of(t.customer_id, ids))
            .order_by(t.customer_id)
            .with_for_update()
        )
        return {r.customer_id: HeldTier(r.tier, r.since, r.watch_since, r.profile_at) for r in rows}

    async def scores(self, customer_ids: Iterable[str]) -> dict[str, PublishedScores]:
        """The scores last published for each customer (the step to the new ones is measured
        from them), without the reasons kept beside them."""
        ids = sorted(set(customer_ids))
        s = CustomerScore.__table__.c
        rows = await self.session.execute(
            select(
                s.customer_id,
                s.published_value_score,
                s.published_churn_risk,
                s.published_risk_flags,
                s.published_at,
            ).where(one_of(s.customer_id, ids))
        )
        return {
            r.customer_id: PublishedScores(
                r.published_value_score, r.published_churn_risk, r.published_risk_flags, r.published_at
            )
            for r in rows
        }

    async def save_tiers(self, rows: Sequence[Mapping[str, Any]]) -> None:
        await self._upsert(CustomerTier, rows, TIER_COLUMNS)

    async def save_scores(self, rows: Sequence[Mapping[str, Any]]) -> None:
        await self._upsert(CustomerScore, rows, SCORE_COLUMNS)

    async def _upsert(
        self, model: type[CustomerTier | CustomerScore], rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> None:
        await upsert_rows(self.session, model.__table__, rows, keys=["customer_id"], update=columns)  # type: ignore[arg-type]

    async def record_changes(self, changes: Sequence[Mapping[str, Any]]) -> None:
        if changes:
            await self.session.execute(insert(TierChange), list(changes))

    # -- what profile tells us about identities ---------------------------------------------------

    async def merged_ids(self, customer_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(customer_ids))
        rows = await self.session.execute(
            select(MergedCustomer.customer_id, MergedCustomer.merged_into).where(
                one_of(MergedCustomer.customer_id, ids)
            )
        )
        return {cid: into for cid, into in rows}

    async def merge(self, merges: Sequence[tuple[str, str]], at: datetime) -> None:
        """Each `(merged, survivor)`, in order: the merged customer has no tier of its own any more;
        earlier redirects follow to the survivor. One executemany per statement for all of them."""
        if not merges:
            return
        await self.session.execute(
            pg_insert(MergedCustomer).on_conflict_do_nothing(),
            [{"customer_id": merged, "merged_into": survivor, "merged_at": at} for merged, survivor in merges],
        )
        redirects: Any = MergedCustomer.__table__  # Core: an ORM update with a list is a bulk update by key
        await self.session.execute(
            update(redirects)
            .where(redirects.c.merged_into == bindparam("b_merged"))
            .values(merged_into=bindparam("b_survivor")),
            [{"b_merged": merged, "b_survivor": survivor} for merged, survivor in merges],
        )
        for model in (CustomerTier, CustomerScore):
            await self.session.execute(
                delete(model).where(model.customer_id.in_(sorted({merged for merged, _ in merges})))
            )

    async def erase(self, customer_id: str) -> None:
        """Drop the personal fields of the stored profile; tiers, scores and figures stay."""
        stripped: Any = CustomerTier.profile
        for name in PERSONAL_PROFILE_FIELDS:
            stripped = stripped.op("-")(name)
        await self.session.execute(
            update(CustomerTier)
            .where(CustomerTier.customer_id == customer_id, CustomerTier.profile.is_not(None))
            .values(profile=stripped)
        )

    # -- sweeps -------------------------------------------------------------------------------------

    async def due_downgrades(self, policy: TierPolicy, now: datetime, limit: int) -> Sequence[CustomerTier]:
        """Customers whose grace period has run out, locked; rows another instance holds are skipped."""
        due = or_(
            *(
                and_(CustomerTier.tier == tier.name, CustomerTier.watch_since <= now - policy.grace(tier.name))
                for tier in policy.tiers
            ),
            CustomerTier.tier.not_in([t.name for t in policy.tiers]),
        )
        rows = await self.session.execute(
            select(CustomerTier)
            .where(CustomerTier.watch_since.is_not(None), CustomerTier.profile.is_not(None), due)
            .order_by(CustomerTier.customer_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return rows.scalars().all()

    async def page(self, after: str, limit: int) -> Sequence[CustomerTier]:
        """The next customers after `after` in id order, locked, for a re-score."""
        rows = await self.session.execute(
            select(CustomerTier)
            .where(CustomerTier.customer_id > after, CustomerTier.profile.is_not(None))
            .order_by(CustomerTier.customer_id)
            .limit(limit)
            .with_for_update()
        )
        return rows.scalars().all()

    # -- reads for the API --------------------------------------------------------------------------

    async def resolve(self, customer_id: str) -> str:
        """The customer id that answers for `customer_id`: the survivor when it was merged."""
        merged = await self.session.scalar(
            select(MergedCustomer.merged_into).where(MergedCustomer.customer_id == customer_id)
        )
        return merged or customer_id

    async def tier(self, customer_id: str) -> CustomerTier | None:
        return await self.session.get(CustomerTier, customer_id)

    async def score(self, customer_id: str) -> CustomerScore | None:
        return await self.session.get(CustomerScore, customer_id)

    async def history(self, customer_ids: Sequence[str], limit: int = 100) -> Sequence[TierChange]:
        rows = await self.session.execute(
            select(TierChange)
            .where(TierChange.customer_id.in_(customer_ids))
            .order_by(TierChange.effective_at.desc(), TierChange.id.desc())
            .limit(limit)
        )
        return rows.scalars().all()

    async def absorbed(self, survivor: str) -> list[str]:
        rows = await self.session.execute(
            select(MergedCustomer.customer_id)
            .where(MergedCustomer.merged_into == survivor)
            .order_by(MergedCustomer.customer_id)
        )
        return list(rows.scalars())

    async def distribution(self, bands: Sequence[Decimal]) -> Distribution:
        """The tier-distribution report's figures in one scan of the tiers table (at branch scale,
        three scans took 0.74 s on an idle machine); `bands` are the bands' lower bounds."""
        band = case(
            *((CustomerTier.aum_cny >= floor, index) for index, floor in reversed(list(enumerate(bands)))), else_=0
        ).label("band")
        rows = await self.session.execute(
            select(
                CustomerTier.tier,
                band,
                func.count(),
                func.coalesce(func.sum(CustomerTier.aum_cny), 0),
                func.count().filter(CustomerTier.watch_since.is_not(None)),
            ).group_by(CustomerTier.tier, band)
        )
        found = Distribution({}, {}, {})
        for tier, index, count, aum, watching in rows:
            cell = DistributionRow(tier, count, Decimal(aum))
            found.by_tier[tier] = found.by_tier[tier] + cell if tier in found.by_tier else cell
            cell = DistributionRow(str(index), count, Decimal(aum))
            found.by_band[index] = found.by_band[index] + cell if index in found.by_band else cell
            found.watching[tier] = found.watching.get(tier, 0) + watching
        return found
