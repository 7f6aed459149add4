"""All engagement SQL; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.engagement.models import OPEN_STATUSES, CustomerState, Task
from services.engagement.rules import TaskProposal


class EngagementStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save_customer_tiers(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        stmt = insert(CustomerState).values(list(rows))
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[CustomerState.customer_id],
                set_={
                    "tier": stmt.excluded.tier,
                    "tier_since": stmt.excluded.tier_since,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )

    async def customers(self, customer_ids: Sequence[str]) -> dict[str, CustomerState]:
        rows = await self.session.execute(select(CustomerState).where(CustomerState.customer_id.in_(customer_ids)))
        return {c.customer_id: c for c in rows.scalars()}

    async def create_task(
        self, proposal: TaskProposal, *, rm_id: str | None, branch_id: str | None, now: datetime
    ) -> Task | None:
        """Insert the task unless the customer already has an open one of the same action."""
        row = await self.session.execute(
            insert(Task)
            .values(
                task_id="T" + uuid.uuid4().hex[:20].upper(),
                customer_id=proposal.customer_id,
                action=proposal.action,
                reason=proposal.reason,
                priority=proposal.priority,
                due_at=proposal.due_at,
                rm_id=rm_id,
                branch_id=branch_id,
                status="open",
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=[Task.customer_id, Task.action],
                index_where=Task.status.in_(OPEN_STATUSES),
            )
            .returning(Task)
        )
        return row.scalar_one_or_none()

    async def open_tasks(self, customer_id: str) -> Sequence[Task]:
        rows = await self.session.execute(
            select(Task)
            .where(Task.customer_id == customer_id, Task.status.in_(OPEN_STATUSES))
            .order_by(Task.priority.desc(), Task.due_at)
        )
        return rows.scalars().all()

    async def tasks(self, *, rm_id: str | None, status: str | None, after: str | None, limit: int) -> Sequence[Task]:
        stmt = select(Task).order_by(Task.task_id).limit(limit)
        if rm_id is not None:
            stmt = stmt.where(Task.rm_id == rm_id)
        if status is not None:
            stmt = stmt.where(Task.status == status)
        if after is not None:
            stmt = stmt.where(Task.task_id > after)
        return (await self.session.execute(stmt)).scalars().all()
