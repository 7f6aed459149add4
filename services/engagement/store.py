"""All engagement SQL; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.engagement.models import OPEN_STATUSES, OPEN_TASK, CustomerState, Manager, Suppression, Task
from services.engagement.policy import Manager as RosterEntry
from services.engagement.policy import Suppressed, TaskHistory
from services.engagement.rules import Proposal

# Personal fields a stored profile may carry; erasure removes them.
PERSONAL_PROFILE_FIELDS = ("birth_date",)


@dataclass(frozen=True)
class CustomerHistory:
    policy: TaskHistory
    last_created: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFilter:
    rm_id: str | None = None
    branch_id: str | None = None
    queue: bool | None = None  # True: only the branch queue (no RM); False: only assigned
    status: str | None = None
    action: str | None = None
    due_before: datetime | None = None
    customer_id: str | None = None


def new_task_id() -> str:
    return "T" + uuid.uuid4().hex[:20].upper()


class EngagementStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- customers -------------------------------------------------------------------------------

    async def lock_customers(self, customer_ids: Iterable[str], now: datetime) -> dict[str, CustomerState]:
        """Each customer's row, created when new, locked for this transaction (in id order)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        await self.session.execute(
            insert(CustomerState)
            .values([{"customer_id": cid, "updated_at": now} for cid in ids])
            .on_conflict_do_nothing()
        )
        rows = await self.session.execute(
            select(CustomerState)
            .where(CustomerState.customer_id.in_(ids))
            .order_by(CustomerState.customer_id)
            .with_for_update()
        )
        return {row.customer_id: row for row in rows.scalars()}

    async def list_customers(
        self,
        *,
        tier: str | None,
        rm_id: str | None,
        branch_id: str | None,
        ids: Sequence[str] | None,
        after: str | None,
        limit: int,
    ) -> Sequence[CustomerState]:
        stmt = (
            select(CustomerState)
            .where(CustomerState.merged_into.is_(None))
            .order_by(CustomerState.customer_id)
            .limit(limit)
        )
        for column, value in (
            (CustomerState.tier, tier),
            (CustomerState.rm_id, rm_id),
            (CustomerState.branch_id, branch_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if ids is not None:
            stmt = stmt.where(CustomerState.customer_id.in_(ids))
        if after is not None:
            stmt = stmt.where(CustomerState.customer_id > after)
        return (await self.session.execute(stmt)).scalars().all()

    async def customer(self, customer_id: str) -> CustomerState | None:
        return await self.session.get(CustomerState, customer_id)

    async def due_customers(self, now: datetime, limit: int) -> dict[str, CustomerState]:
        """Customers a time-based rule may fire for now; rows another instance holds are skipped."""
        rows = await self.session.execute(
            select(CustomerState)
            .where(CustomerState.next_check_at <= now, CustomerState.merged_into.is_(None))
            .order_by(CustomerState.next_check_at, CustomerState.customer_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return {row.customer_id: row for row in rows.scalars()}

    async def customers_of_manager(self, rm_id: str) -> dict[str, CustomerState]:
        rows = await self.session.execute(
            select(CustomerState)
            .where(CustomerState.rm_id == rm_id)
            .order_by(CustomerState.customer_id)
            .with_for_update()
        )
        return {row.customer_id: row for row in rows.scalars()}

    async def queued_customers(self, branch_id: str, tiers: Sequence[str], limit: int) -> dict[str, CustomerState]:
        """Customers of the branch whose tier needs an RM and who have none (the branch queue)."""
        rows = await self.session.execute(
            select(CustomerState)
            .where(
                CustomerState.branch_id == branch_id,
                CustomerState.tier.in_(tiers),
                CustomerState.rm_id.is_(None),
                CustomerState.merged_into.is_(None),
            )
            .order_by(CustomerState.tier_since, CustomerState.customer_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return {row.customer_id: row for row in rows.scalars()}

    async def erase(self, customer_id: str, at: datetime) -> None:
        """Drop what names the person: birth date, the stored profile's personal fields, task outcomes."""
        stripped: Any = CustomerState.profile
        for name in PERSONAL_PROFILE_FIELDS:
            stripped = stripped.op("-")(name)
        await self.session.execute(
            update(CustomerState)
            .where(CustomerState.customer_id == customer_id)
            .values(birth_date=None, profile=stripped, erased_at=at)
        )
        await self.session.execute(
            update(Task).where(Task.customer_id == customer_id, Task.outcome.is_not(None)).values(outcome="(erased)")
        )

    # -- tasks -----------------------------------------------------------------------------------

    async def history(self, customer_ids: Iterable[str], now: datetime) -> dict[str, CustomerHistory]:
        """Per customer: open actions, when each action's last task closed and was created, and how
        many tasks were created in the last 7 days."""
        ids = sorted(set(customer_ids))
        rows = await self.session.execute(
            select(
                Task.customer_id,
                Task.action,
                func.bool_or(Task.status.in_(OPEN_STATUSES)),
                func.max(Task.closed_at),
                func.max(Task.created_at),
                func.count().filter(Task.created_at > now - timedelta(days=7)),
            )
            .where(Task.customer_id.in_(ids))
            .group_by(Task.customer_id, Task.action)
        )
        open_: dict[str, set[str]] = {cid: set() for cid in ids}
        closed: dict[str, dict[str, datetime]] = {cid: {} for cid in ids}
        created: dict[str, dict[str, datetime]] = {cid: {} for cid in ids}
        week: dict[str, int] = dict.fromkeys(ids, 0)
        for cid, action, is_open, last_closed, last_created, recent in rows:
            if is_open:
                open_[cid].add(action)
            if last_closed is not None:
                closed[cid][action] = last_closed
            created[cid][action] = last_created
            week[cid] += recent
        return {
            cid: CustomerHistory(TaskHistory(frozenset(open_[cid]), closed[cid], week[cid]), created[cid])
            for cid in ids
        }

    async def create_task(
        self, proposal: Proposal, *, rm_id: str | None, branch_id: str | None, now: datetime
    ) -> Task | None:
        """Insert the task unless the customer already has an open one of the same action."""
        row = await self.session.execute(
            insert(Task)
            .values(
                task_id=new_task_id(),
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
                index_where=OPEN_TASK,
            )
            .returning(Task)
        )
        return row.scalar_one_or_none()

    async def record_suppressions(self, customer_id: str, suppressed: Sequence[Suppressed], now: datetime) -> None:
        """Keep each decision not to create a task; the same decision again counts up."""
        if not suppressed:
            return
        stmt = insert(Suppression).values(
            [
                {
                    "customer_id": customer_id,
                    "action": s.proposal.action,
                    "code": s.code,
                    "reason": s.reason,
                    "proposed_reason": s.proposal.reason,
                    "first_at": now,
                    "last_at": now,
                    "count": 1,
                }
                for s in suppressed
            ]
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Suppression.customer_id, Suppression.action, Suppression.code],
                set_={
                    "reason": stmt.excluded.reason,
                    "proposed_reason": stmt.excluded.proposed_reason,
                    "last_at": stmt.excluded.last_at,
                    "count": Suppression.count + 1,
                },
            )
        )

    async def suppressions(self, customer_id: str) -> Sequence[Suppression]:
        rows = await self.session.execute(
            select(Suppression).where(Suppression.customer_id == customer_id).order_by(Suppression.last_at.desc())
        )
        return rows.scalars().all()

    async def open_tasks(self, customer_id: str, *, action: str | None = None, lock: bool = False) -> Sequence[Task]:
        stmt = (
            select(Task)
            .where(Task.customer_id == customer_id, Task.status.in_(OPEN_STATUSES))
            .order_by(Task.priority.desc(), Task.due_at, Task.task_id)
        )
        if action is not None:
            stmt = stmt.where(Task.action == action)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalars().all()

    async def task(self, task_id: str, *, lock: bool = False) -> Task | None:
        return await self.session.get(Task, task_id, with_for_update=lock)

    async def tasks(self, where: TaskFilter, *, after: tuple[datetime, str] | None, limit: int) -> Sequence[Task]:
        """Tasks by due date (then id), paged by `(due_at, task_id)`."""
        stmt = select(Task).order_by(Task.due_at, Task.task_id).limit(limit)
        if where.rm_id is not None:
            stmt = stmt.where(Task.rm_id == where.rm_id)
        if where.branch_id is not None:
            stmt = stmt.where(Task.branch_id == where.branch_id)
        if where.queue is not None:
            stmt = stmt.where(Task.rm_id.is_(None) if where.queue else Task.rm_id.is_not(None))
        if where.status == "overdue":
            stmt = stmt.where(Task.status.in_(OPEN_STATUSES), Task.due_at < func.now())
        elif where.status is not None:
            stmt = stmt.where(Task.status == where.status)
        if where.action is not None:
            stmt = stmt.where(Task.action == where.action)
        if where.due_before is not None:
            stmt = stmt.where(Task.due_at < where.due_before)
        if where.customer_id is not None:
            stmt = stmt.where(Task.customer_id == where.customer_id)
        if after is not None:
            stmt = stmt.where(or_(Task.due_at > after[0], (Task.due_at == after[0]) & (Task.task_id > after[1])))
        return (await self.session.execute(stmt)).scalars().all()

    # -- the roster ------------------------------------------------------------------------------

    async def manager(self, rm_id: str, *, lock: bool = False) -> Manager | None:
        return await self.session.get(Manager, rm_id, with_for_update=lock)

    async def save_manager(self, values: dict[str, Any]) -> Manager:
        stmt = insert(Manager).values(values)
        row = await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Manager.rm_id],
                set_={name: stmt.excluded[name] for name in values if name != "rm_id"},
            ).returning(Manager)
        )
        manager = row.scalar_one()
        await self.session.refresh(manager)
        return manager

    async def managers(self, *, branch_id: str | None, after: str | None, limit: int) -> Sequence[Manager]:
        stmt = select(Manager).order_by(Manager.rm_id).limit(limit)
        if branch_id is not None:
            stmt = stmt.where(Manager.branch_id == branch_id)
        if after is not None:
            stmt = stmt.where(Manager.rm_id > after)
        return (await self.session.execute(stmt)).scalars().all()

    async def loads(self, rm_ids: Iterable[str]) -> dict[str, int]:
        """Customers assigned to each RM now."""
        ids = sorted(set(rm_ids))
        rows = await self.session.execute(
            select(CustomerState.rm_id, func.count())
            .where(CustomerState.rm_id.in_(ids), CustomerState.merged_into.is_(None))
            .group_by(CustomerState.rm_id)
        )
        found: dict[str, int] = dict.fromkeys(ids, 0)
        found.update({rm: count for rm, count in rows if rm is not None})
        return found

    async def roster(self, branch_id: str | None, grade: str) -> list[RosterEntry]:
        """Active RMs of the grade in the branch with their load, locked so that two instances
        assigning customers at once take turns."""
        if branch_id is None:
            return []
        rows = await self.session.execute(
            select(Manager)
            .where(Manager.branch_id == branch_id, Manager.grade == grade, Manager.active.is_(True))
            .order_by(Manager.rm_id)
            .with_for_update()
        )
        managers = list(rows.scalars())
        loads = await self.loads(m.rm_id for m in managers)
        return [entry(m, loads[m.rm_id]) for m in managers]


def entry(manager: Manager, load: int = 0) -> RosterEntry:
    return RosterEntry(manager.rm_id, manager.grade, manager.branch_id, manager.capacity, manager.active, load)
