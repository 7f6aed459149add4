"""What each consumed batch does: fold profile, tier and score events into what engagement knows
of each customer, follow merges and erasures, then let the catalogue act on every customer the
batch touched, with the signals the batch carried (a tier entered, a watch begun, a new flag), and
re-evaluate those customers' segment memberships."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from contracts import (
    CustomerErased,
    CustomerMerged,
    ProfileUpdated,
    ScoreUpdated,
    TaskStatus,
    TierChanged,
)
from runtime.consumer import BatchContext, ConsumedEvent
from services.engagement.audiences import Audiences
from services.engagement.engine import Engagement, keep_profile
from services.engagement.models import CustomerState
from services.engagement.rules import Signals
from services.engagement.store import EngagementStore


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two optional instants."""
    return max((t for t in (a, b) if t is not None), default=None)


class EngagementHandler:
    def __init__(self, engagement: Engagement, audiences: Audiences) -> None:
        self.engagement = engagement
        self.audiences = audiences

    async def __call__(self, ctx: BatchContext, events: Sequence[ConsumedEvent]) -> None:
        store = EngagementStore(ctx.session)
        now = ctx.clock.now()
        touched = sorted(
            {
                e.data.customer_id
                for e in events
                if isinstance(e.data, ProfileUpdated | TierChanged | ScoreUpdated | CustomerErased)
            }
            | {e.data.merged_customer_id for e in events if isinstance(e.data, CustomerMerged)}
        )
        if not touched:
            return
        rows = await store.lock_customers(touched, now, without_profile=True)
        signals: dict[str, Signals] = {}
        causes: dict[str, ConsumedEvent] = {}
        for event in events:
            data = event.data
            if isinstance(data, ProfileUpdated):
                self._profile(rows[data.customer_id], data, event)
            elif isinstance(data, TierChanged):
                signals[data.customer_id] = self._tier(rows[data.customer_id], data, signals.get(data.customer_id))
            elif isinstance(data, ScoreUpdated):
                signals[data.customer_id] = self._score(rows[data.customer_id], data, signals.get(data.customer_id))
            elif isinstance(data, CustomerMerged):
                await self._merged(ctx, store, rows[data.merged_customer_id], data, event)
                continue
            elif isinstance(data, CustomerErased):
                await store.erase(data.customer_id, now)
                continue
            else:
                continue
            causes[data.customer_id] = event
        await store.kept_profiles(rows.values())
        await self.engagement.evaluate(ctx, store, rows, signals, causes)
        await self.audiences.refresh(ctx, store, rows)
        await store.save_customers(rows.values())

    @staticmethod
    def _profile(row: CustomerState, data: ProfileUpdated, event: ConsumedEvent) -> None:
        at = event.envelope.time
        if row.profile_at is not None and at < row.profile_at:
            return  # an older view than the one kept
        keep_profile(row, data, event.parsed.data_text())
        row.profile_at = at
        row.branch_id = data.branch_id or row.branch_id
        row.marketing_consent = data.marketing_consent
        row.birth_date = data.birth_date
        if data.interactions is not None:
            row.last_contact_at = _later(row.last_contact_at, data.interactions.last_contact_at)

    @staticmethod
    def _tier(row: CustomerState, data: TierChanged, seen: Signals | None) -> Signals:
        signals = seen or Signals()
        if row.tier_since is not None and data.effective_at < row.tier_since:
            return signals  # older than the tier kept
        if data.from_tier != data.to_tier:
            row.tier, row.tier_since, row.watch_since = data.to_tier, data.effective_at, None
            return replace(signals, entered_tier=(data.from_tier, data.to_tier), watch_started=False)
        row.tier = data.to_tier
        row.watch_since = data.watch_since
        return replace(signals, watch_started=data.watch_since is not None)

    @staticmethod
    def _score(row: CustomerState, data: ScoreUpdated, seen: Signals | None) -> Signals:
        signals = seen or Signals()
        new = frozenset(data.risk_flags) - frozenset(row.risk_flags or ())
        row.value_score = data.value_score
        row.churn_risk = data.churn_risk
        row.risk_flags = sorted(data.risk_flags)
        row.flag_reasons = {r.factor: r.text for r in data.reasons if r.score == "flag"}
        return replace(signals, new_flags=signals.new_flags | new)

    async def _merged(
        self, ctx: BatchContext, store: EngagementStore, row: CustomerState, data: CustomerMerged, event: ConsumedEvent
    ) -> None:
        """The merged customer is no one any more: its open tasks are dismissed; the survivor's own
        events bring its tasks."""
        now = ctx.clock.now()
        row.merged_into = data.surviving_customer_id
        row.rm_id = None
        row.next_check_at = None
        for task in await store.open_tasks(row.customer_id, lock=True):
            task.status = TaskStatus.DISMISSED.value
            task.outcome = f"customer merged into {data.surviving_customer_id}"
            task.closed_at = task.updated_at = now
            self.engagement.publish(ctx, task, created=False, cause=event)
