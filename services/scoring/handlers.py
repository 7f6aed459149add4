"""What each consumed batch does to tiers: decide, record and publish real changes only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts import ProfileUpdated, TierChanged
from runtime.consumer import BatchContext, ConsumedEvent
from services.scoring.policy import TierPolicy, decide_tier
from services.scoring.store import ScoringStore


class ScoringHandler:
    def __init__(self, policy: TierPolicy) -> None:
        self.policy = policy

    async def __call__(self, ctx: BatchContext, events: Sequence[ConsumedEvent]) -> None:
        latest: dict[str, tuple[ProfileUpdated, ConsumedEvent]] = {}
        for event in events:
            if isinstance(event.data, ProfileUpdated):
                latest[event.data.customer_id] = (event.data, event)
        if not latest:
            return
        store = ScoringStore(ctx.session)
        now = ctx.clock.now()
        current = await store.tiers(latest)
        rows: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for customer_id, (profile, event) in sorted(latest.items()):
            measure = getattr(profile, self.policy.measure)
            existing = current.get(customer_id)
            decision = decide_tier(self.policy, existing.tier if existing else None, measure)
            tier = decision.to_tier if decision else existing.tier if existing else self.policy.tiers[0].name
            rows.append(
                {
                    "customer_id": customer_id,
                    "tier": tier,
                    "since": now if decision or existing is None else existing.since,
                    "measure_cny": measure,
                    "aum_cny": profile.aum_cny,
                    "aum_avg_30d_cny": profile.aum_avg_30d_cny,
                    "branch_id": profile.branch_id,
                    "updated_at": now,
                }
            )
            if decision is None:
                continue
            changes.append(
                {
                    "customer_id": customer_id,
                    "from_tier": decision.from_tier,
                    "to_tier": decision.to_tier,
                    "reason": decision.reason,
                    "measure_cny": measure,
                    "effective_at": now,
                }
            )
            ctx.publish(
                TierChanged(
                    customer_id=customer_id,
                    from_tier=decision.from_tier,
                    to_tier=decision.to_tier,
                    reason=decision.reason,
                    effective_at=now,
                    measure_cny=measure,
                ),
                cause=event,
            )
        await store.save_tiers(rows)
        await store.record_changes(changes)
