"""What each consumed batch does: keep customers' tiers and turn tier changes into tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts import TASK_CREATED, TaskEvent, TaskStatus, TierChanged
from runtime.consumer import BatchContext, ConsumedEvent
from services.engagement.models import Task
from services.engagement.rules import WelcomeRule
from services.engagement.store import EngagementStore


def task_event(task: Task) -> TaskEvent:
    return TaskEvent(
        task_id=task.task_id,
        customer_id=task.customer_id,
        action=task.action,
        reason=task.reason,
        priority=task.priority,
        due_at=task.due_at,
        rm_id=task.rm_id,
        status=TaskStatus(task.status),
        outcome=task.outcome,
        branch_id=task.branch_id,
    )


class EngagementHandler:
    def __init__(self, welcome: WelcomeRule) -> None:
        self.welcome = welcome

    async def __call__(self, ctx: BatchContext, events: Sequence[ConsumedEvent]) -> None:
        store = EngagementStore(ctx.session)
        now = ctx.clock.now()
        # A watch starting or ending (`from_tier == to_tier`) leaves the tier and its `since` as they are.
        tier_events = [e for e in events if isinstance(e.data, TierChanged) and e.data.from_tier != e.data.to_tier]
        if not tier_events:
            return
        latest: dict[str, dict[str, Any]] = {}
        for event in tier_events:
            assert isinstance(event.data, TierChanged)
            change = event.data
            latest[change.customer_id] = {
                "customer_id": change.customer_id,
                "tier": change.to_tier,
                "tier_since": change.effective_at,
                "updated_at": now,
            }
        await store.save_customer_tiers([latest[cid] for cid in sorted(latest)])
        known = await store.customers(sorted(latest))
        for event in tier_events:
            assert isinstance(event.data, TierChanged)
            change = event.data
            proposal = self.welcome.propose(change.customer_id, change.from_tier, change.to_tier, now)
            if proposal is None:
                continue
            customer = known.get(change.customer_id)
            task = await store.create_task(
                proposal,
                rm_id=customer.rm_id if customer else None,
                branch_id=customer.branch_id if customer else None,
                now=now,
            )
            if task is not None:
                ctx.publish(task_event(task), type_=TASK_CREATED, cause=event)
