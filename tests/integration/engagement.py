"""Driving the engagement service's handler and jobs directly against the real database, with
time moved by a test clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import CloudEvent, TaskEvent, TierChanged, build_event
from runtime.clock import FixedClock
from runtime.consumer import BatchContext
from runtime.db import transaction
from runtime.outbox import OutboxMessage
from services.engagement.audiences import Audiences
from services.engagement.engine import Engagement
from services.engagement.handlers import EngagementHandler
from services.engagement.models import Task
from services.engagement.store import EngagementStore
from tests.builders import consumed

# Far from the wall clock, so the running platform's own sweep and dispatcher never find these
# customers or campaigns due.
START = datetime(2032, 3, 1, 8, 0, tzinfo=UTC)


@dataclass
class Service:
    sessions: async_sessionmaker[AsyncSession]
    clock: FixedClock
    engagement: Engagement
    audiences: Audiences

    async def consume(self, *events: CloudEvent) -> list[OutboxMessage]:
        async with transaction(self.sessions) as session:
            ctx = BatchContext(session=session, clock=self.clock, source="engagement")
            await EngagementHandler(self.engagement, self.audiences)(ctx, consumed(None, events))
        return ctx.outbox

    @asynccontextmanager
    async def context(self) -> AsyncIterator[tuple[BatchContext, EngagementStore]]:
        """One transaction as a job round has it."""
        async with transaction(self.sessions) as session:
            yield BatchContext(session=session, clock=self.clock, source="engagement"), EngagementStore(session)

    @asynccontextmanager
    async def store(self) -> AsyncIterator[EngagementStore]:
        async with transaction(self.sessions) as session:
            yield EngagementStore(session)

    async def tasks(self, customer_id: str) -> list[Task]:
        async with self.sessions() as session:
            rows = await session.execute(select(Task).where(Task.customer_id == customer_id).order_by(Task.created_at))
            return list(rows.scalars())


def tier_changed(customer_id: str, from_tier: str | None, to_tier: str, at: datetime, **extra: object) -> CloudEvent:
    data = TierChanged.model_validate(
        {
            "customer_id": customer_id,
            "from_tier": from_tier,
            "to_tier": to_tier,
            "reason": "test",
            "effective_at": at,
            **extra,
        }
    )
    return build_event(data, source="scoring", time=at)


def created(messages: Sequence[OutboxMessage]) -> list[TaskEvent]:
    return [TaskEvent.model_validate(m.event.data) for m in messages if m.event.type == "c360.task.created.v1"]
