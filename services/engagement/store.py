"""All engagement SQL; the caller owns the transaction."""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ARRAY, DateTime, Text, bindparam, delete, func, literal, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value

from runtime.db import NestedRows, OneStatementRead, one_of, unnested_params, update_unnested
from services.engagement.models import (
    OPEN_STATUSES,
    OPEN_TASK,
    Campaign,
    CampaignTarget,
    CustomerState,
    Manager,
    Segment,
    SegmentMember,
    Suppression,
    Task,
)
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


_STATES: Any = CustomerState.__table__
_GIVEN_IDS = func.unnest(bindparam("ids", type_=ARRAY(Text))).table_valued("customer_id").render_derived()
#: A row for each customer not seen before, in one statement whatever the number of ids (most
#: customers of a batch are known; one INSERT per id was an execution per customer).
_NEW_CUSTOMERS = (
    insert(_STATES)
    .from_select(
        ["customer_id", "updated_at"],
        select(_GIVEN_IDS.c.customer_id, bindparam("now", type_=DateTime(timezone=True))),
    )
    .on_conflict_do_nothing()
)
#: Most urgent first: how a customer's open tasks are listed.
OPEN_TASK_ORDER = (Task.priority.desc(), Task.due_at, Task.task_id)
_OPEN_TASKS = (
    select(Task)
    .where(Task.customer_id == bindparam("customer_id"), Task.status.in_(OPEN_STATUSES))
    .order_by(*OPEN_TASK_ORDER)
)
#: The columns of each open task in a customer's engagement view.
VIEW_TASK_COLUMNS: tuple[Any, ...] = (
    Task.task_id,
    Task.customer_id,
    Task.action,
    Task.reason,
    Task.priority,
    Task.due_at,
    Task.rm_id,
    Task.branch_id,
    Task.status,
    Task.outcome,
    Task.created_at,
    Task.updated_at,
    Task.closed_at,
)


@functools.cache
def _customers_update(names: tuple[str, ...]) -> Any:
    """UPDATE the customers whose `names` changed, from arrays (`save_customers`)."""
    statement, _ = update_unnested(_STATES, ("customer_id",), names)
    return statement


def _engagement_read() -> OneStatementRead:
    asked = select(bindparam("customer_id", type_=Text).label("customer_id")).subquery()
    open_tasks = NestedRows(
        "open_tasks",
        VIEW_TASK_COLUMNS,
        (Task.customer_id == asked.c.customer_id, Task.status.in_([literal(s) for s in OPEN_STATUSES])),
        OPEN_TASK_ORDER,
    )
    statement = (
        select(
            asked.c.customer_id,
            CustomerState.customer_id.label("known"),
            CustomerState.tier,
            CustomerState.watch_since,
            CustomerState.rm_id,
            CustomerState.branch_id,
            CustomerState.last_contact_at,
            open_tasks.column(),
        )
        .select_from(asked)
        .outerjoin(CustomerState, CustomerState.customer_id == asked.c.customer_id)
    )
    return OneStatementRead(statement, "Engagement", nested=(open_tasks,))


# The gateway reads this on every view: one statement on the driver (runtime.db.OneStatementRead),
# so the customer row and its open tasks come from one snapshot; an RM assignment commits with the
# tasks it moves, so the two always agree on the RM.
_ENGAGEMENT = _engagement_read()


async def engagement_row(engine: AsyncEngine, customer_id: str) -> Any:
    """A customer's RM assignment and watch (`known` is null when engagement has not heard of
    them) with their open tasks, most urgent first, as dicts of VIEW_TASK_COLUMNS."""
    row = await _ENGAGEMENT.one_or_none(engine, customer_id=customer_id)
    assert row is not None  # selected from a one-row subquery: always a row
    return row


class EngagementStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- customers -------------------------------------------------------------------------------

    async def lock_customers(
        self, customer_ids: Iterable[str], now: datetime, *, without_profile: bool = False
    ) -> dict[str, CustomerState]:
        """Each customer's row, created when new, locked for this transaction (in id order).

        `without_profile` leaves the kept profile unread (a batch that brings a newer one need not
        read the old); `kept_profiles` reads it for the rows that still need it."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        await self.session.execute(_NEW_CUSTOMERS, {"ids": ids, "now": now})
        stmt = select(CustomerState).where(one_of(CustomerState.customer_id, ids)).order_by(CustomerState.customer_id)
        if without_profile:
            stmt = stmt.options(defer(CustomerState.profile, raiseload=True))
        rows = await self.session.execute(stmt.with_for_update())
        return {row.customer_id: row for row in rows.scalars()}

    async def kept_profiles(self, rows: Iterable[CustomerState]) -> None:
        """Read the kept profile of each row that has neither read it nor been given a new one."""
        unread = {row.customer_id: row for row in rows if "profile" in sa_inspect(row).unloaded}
        if not unread:
            return
        wanted = one_of(CustomerState.customer_id, sorted(unread))
        found = await self.session.execute(select(CustomerState.customer_id, CustomerState.profile).where(wanted))
        for customer_id, profile in found:
            set_committed_value(unread[customer_id], "profile", profile)

    async def save_customers(self, rows: Iterable[CustomerState]) -> None:
        """Write what changed on `rows` (locked in this transaction) from arrays, one statement for
        the rows whose changed columns are the same, where the unit of work runs one UPDATE a row;
        the rows written leave the session, so its flush has nothing more to do for them."""
        groups: defaultdict[tuple[str, ...], list[CustomerState]] = defaultdict(list)
        for row in rows:
            state = sa_inspect(row)
            if state.persistent and state.committed_state:
                # The attributes set since the row was read, as the unit of work finds them.
                groups[tuple(sorted(state.committed_state))].append(row)
        for names, changed_rows in sorted(groups.items()):
            values = [{"customer_id": row.customer_id, **{n: getattr(row, n) for n in names}} for row in changed_rows]
            await self.session.execute(_customers_update(names), unnested_params(("customer_id", *names), values))
            for row in changed_rows:
                self.session.expunge(row)

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
            .where(one_of(Task.customer_id, ids))
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
        self,
        proposal: Proposal,
        *,
        rm_id: str | None,
        branch_id: str | None,
        now: datetime,
        campaign_id: str | None = None,
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
                campaign_id=campaign_id,
            )
            .on_conflict_do_nothing(
                index_elements=[Task.customer_id, Task.action],
                index_where=OPEN_TASK,
            )
            .returning(Task)
        )
        return row.scalar_one_or_none()

    async def record_suppressions(self, suppressed: Sequence[tuple[str, Suppressed]], now: datetime) -> None:
        """Keep each decision not to create a task (`(customer_id, suppression)` pairs, for any
        number of customers); the same decision again counts up. One cached executemany."""
        if not suppressed:
            return
        stmt = insert(Suppression)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Suppression.customer_id, Suppression.action, Suppression.code],
                set_={
                    "reason": stmt.excluded.reason,
                    "proposed_reason": stmt.excluded.proposed_reason,
                    "last_at": stmt.excluded.last_at,
                    "count": Suppression.count + 1,
                },
            ),
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
                for customer_id, s in suppressed
            ],
        )

    async def suppressions(self, customer_id: str) -> Sequence[Suppression]:
        rows = await self.session.execute(
            select(Suppression).where(Suppression.customer_id == customer_id).order_by(Suppression.last_at.desc())
        )
        return rows.scalars().all()

    async def open_tasks(self, customer_id: str, *, action: str | None = None, lock: bool = False) -> Sequence[Task]:
        stmt = _OPEN_TASKS
        if action is not None:
            stmt = stmt.where(Task.action == action)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt, {"customer_id": customer_id})).all()

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

    # -- segments --------------------------------------------------------------------------------

    async def segments(self) -> Sequence[Segment]:
        return (await self.session.execute(select(Segment).order_by(Segment.segment_id))).scalars().all()

    async def segment(self, segment_id: str, *, lock: bool = False) -> Segment | None:
        return await self.session.get(Segment, segment_id, with_for_update=lock)

    async def list_segments(self, *, after: str | None, limit: int) -> Sequence[Segment]:
        stmt = select(Segment).order_by(Segment.segment_id).limit(limit)
        if after is not None:
            stmt = stmt.where(Segment.segment_id > after)
        return (await self.session.execute(stmt)).scalars().all()

    async def segment_sizes(self, segment_ids: Iterable[str]) -> dict[str, int]:
        ids = sorted(set(segment_ids))
        rows = await self.session.execute(
            select(SegmentMember.segment_id, func.count())
            .where(SegmentMember.segment_id.in_(ids))
            .group_by(SegmentMember.segment_id)
        )
        sizes = dict.fromkeys(ids, 0)
        sizes.update({sid: n for sid, n in rows})
        return sizes

    async def count_customers(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(CustomerState)) or 0

    async def customers_after(self, after: str | None, limit: int) -> dict[str, CustomerState]:
        """The next customers in id order after `after`, locked (waiting for a consumer holding them)."""
        stmt = select(CustomerState).order_by(CustomerState.customer_id).limit(limit).with_for_update()
        if after is not None:
            stmt = stmt.where(CustomerState.customer_id > after)
        return {row.customer_id: row for row in (await self.session.execute(stmt)).scalars()}

    async def memberships(self, customer_ids: Iterable[str]) -> dict[str, set[str]]:
        ids = sorted(set(customer_ids))
        found: dict[str, set[str]] = {cid: set() for cid in ids}
        rows = await self.session.execute(
            select(SegmentMember.customer_id, SegmentMember.segment_id).where(one_of(SegmentMember.customer_id, ids))
        )
        for cid, sid in rows:
            found[cid].add(sid)
        return found

    async def enter(self, segment_id: str, customer_ids: Sequence[str], at: datetime) -> None:
        await self.session.execute(
            insert(SegmentMember.__table__).on_conflict_do_nothing(),  # type: ignore[arg-type]
            [{"segment_id": segment_id, "customer_id": cid, "entered_at": at} for cid in customer_ids],
        )

    async def leave(self, segment_id: str, customer_ids: Sequence[str]) -> None:
        await self.session.execute(
            delete(SegmentMember).where(
                SegmentMember.segment_id == segment_id, SegmentMember.customer_id.in_(customer_ids)
            )
        )

    async def touch_segments(self, segment_ids: Iterable[str], at: datetime) -> None:
        """Note when the segments were last evaluated: one executemany, rows locked in id order
        (after any campaign row; the lock order of docs/segments.md)."""
        rows = [{"b_segment_id": sid, "b_at": at} for sid in sorted(set(segment_ids))]
        if not rows:
            return
        table = Segment.__table__
        await self.session.execute(
            update(table)  # type: ignore[arg-type]
            .where(table.c.segment_id == bindparam("b_segment_id"))
            .values(
                evaluated_at=func.greatest(
                    func.coalesce(table.c.evaluated_at, bindparam("b_at")),
                    bindparam("b_at"),
                )
            ),
            rows,
        )

    async def members(
        self,
        segment_id: str,
        *,
        rm_id: str | None,
        branch_id: str | None,
        after: str | None,
        limit: int,
    ) -> Sequence[tuple[SegmentMember, CustomerState]]:
        stmt = (
            select(SegmentMember, CustomerState)
            .join(CustomerState, CustomerState.customer_id == SegmentMember.customer_id)
            .where(SegmentMember.segment_id == segment_id)
            .order_by(SegmentMember.customer_id)
            .limit(limit)
        )
        if rm_id is not None:
            stmt = stmt.where(CustomerState.rm_id == rm_id)
        if branch_id is not None:
            stmt = stmt.where(CustomerState.branch_id == branch_id)
        if after is not None:
            stmt = stmt.where(SegmentMember.customer_id > after)
        return [(m, c) for m, c in (await self.session.execute(stmt))]

    # -- campaigns -------------------------------------------------------------------------------

    async def campaign(self, campaign_id: str, *, lock: bool = False) -> Campaign | None:
        return await self.session.get(Campaign, campaign_id, with_for_update=lock)

    async def list_campaigns(self, *, after: str | None, limit: int) -> Sequence[Campaign]:
        stmt = select(Campaign).order_by(Campaign.campaign_id).limit(limit)
        if after is not None:
            stmt = stmt.where(Campaign.campaign_id > after)
        return (await self.session.execute(stmt)).scalars().all()

    async def running_campaigns(self, now: datetime, segment_ids: Iterable[str] | None = None) -> Sequence[Campaign]:
        """Campaigns whose window holds `now` (on these segments), locked in id order: one
        dispatcher at a time counts a campaign's caps."""
        stmt = (
            select(Campaign)
            .where(Campaign.starts_at <= now, Campaign.ends_at > now)
            .order_by(Campaign.campaign_id)
            .with_for_update()
        )
        if segment_ids is not None:
            stmt = stmt.where(Campaign.segment_id.in_(sorted(set(segment_ids))))
        return (await self.session.execute(stmt)).scalars().all()

    async def ended_with_waiting(self, now: datetime) -> Sequence[str]:
        rows = await self.session.execute(
            select(Campaign.campaign_id)
            .where(
                Campaign.ends_at <= now,
                select(CampaignTarget.customer_id)
                .where(CampaignTarget.campaign_id == Campaign.campaign_id, CampaignTarget.status == "waiting")
                .exists(),
            )
            .order_by(Campaign.campaign_id)
        )
        return rows.scalars().all()

    async def target(self, campaign_id: str, customer_ids: Sequence[str], now: datetime) -> list[str]:
        """Make the customers targets of the campaign, once per campaign; the ids newly targeted."""
        if not customer_ids:
            return []
        rows = await self.session.execute(
            insert(CampaignTarget)
            .values(
                [
                    {"campaign_id": campaign_id, "customer_id": cid, "status": "waiting", "targeted_at": now}
                    for cid in customer_ids
                ]
            )
            .on_conflict_do_nothing()
            .returning(CampaignTarget.customer_id)
        )
        return list(rows.scalars())

    async def target_members(self, campaign_id: str, segment_id: str, now: datetime) -> None:
        """Every current member of the segment becomes a target (once per campaign)."""
        chosen = select(literal(campaign_id), SegmentMember.customer_id, literal("waiting"), literal(now)).where(
            SegmentMember.segment_id == segment_id
        )
        await self.session.execute(
            insert(CampaignTarget)
            .from_select(["campaign_id", "customer_id", "status", "targeted_at"], chosen)
            .on_conflict_do_nothing()
        )

    async def waiting_targets(
        self,
        campaign_id: str,
        *,
        limit: int,
        customer_ids: Sequence[str] | None = None,
        skip_branches: Sequence[str | None] = (),
    ) -> dict[str, CustomerState]:
        """Waiting targets, highest value score first, their customers locked; customers another
        transaction holds are skipped (they wait for the next round)."""
        stmt = (
            select(CustomerState)
            .join(
                CampaignTarget,
                (CampaignTarget.customer_id == CustomerState.customer_id) & (CampaignTarget.campaign_id == campaign_id),
            )
            .where(CampaignTarget.status == "waiting", CustomerState.merged_into.is_(None))
            .order_by(
                CustomerState.value_score.desc().nulls_last(), CampaignTarget.targeted_at, CustomerState.customer_id
            )
            .limit(limit)
            .with_for_update(of=CustomerState, skip_locked=True)
        )
        if customer_ids is not None:
            stmt = stmt.where(CustomerState.customer_id.in_(customer_ids))
        named = [b for b in skip_branches if b is not None]
        if named:
            stmt = stmt.where(or_(CustomerState.branch_id.is_(None), CustomerState.branch_id.not_in(named)))
        if None in skip_branches:
            stmt = stmt.where(CustomerState.branch_id.is_not(None))
        rows = (await self.session.execute(stmt)).scalars().all()
        return {row.customer_id: row for row in rows}

    async def created_since(self, campaign_id: str, since: datetime) -> dict[str | None, int]:
        """Tasks the campaign created since `since`, per branch."""
        rows = await self.session.execute(
            select(CampaignTarget.branch_id, func.count())
            .where(
                CampaignTarget.campaign_id == campaign_id,
                CampaignTarget.status == "created",
                CampaignTarget.decided_at >= since,
            )
            .group_by(CampaignTarget.branch_id)
        )
        return {branch: n for branch, n in rows}

    async def decide(
        self,
        campaign_id: str,
        customer_id: str,
        *,
        status: str,
        now: datetime,
        branch_id: str | None = None,
        task_id: str | None = None,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        await self.session.execute(
            update(CampaignTarget)
            .where(CampaignTarget.campaign_id == campaign_id, CampaignTarget.customer_id == customer_id)
            .values(status=status, branch_id=branch_id, task_id=task_id, code=code, reason=reason, decided_at=now)
        )

    async def expire_waiting(self, campaign_id: str, now: datetime) -> None:
        await self.session.execute(
            update(CampaignTarget)
            .where(CampaignTarget.campaign_id == campaign_id, CampaignTarget.status == "waiting")
            .values(status="expired", reason="the campaign ended before its volume caps reached them", decided_at=now)
        )

    async def tasks_of_campaign(self, campaign_id: str) -> Sequence[Task]:
        rows = await self.session.execute(
            select(Task).where(Task.campaign_id == campaign_id).order_by(Task.created_at, Task.task_id)
        )
        return rows.scalars().all()

    async def campaign_stats(
        self, campaign_id: str
    ) -> tuple[dict[tuple[str, str | None], int], dict[tuple[str, str | None], int]]:
        """Targets by (status, suppression code), and the campaign's tasks by (status, outcome)."""
        targets = await self.session.execute(
            select(CampaignTarget.status, CampaignTarget.code, func.count())
            .where(CampaignTarget.campaign_id == campaign_id)
            .group_by(CampaignTarget.status, CampaignTarget.code)
        )
        tasks = await self.session.execute(
            select(Task.status, Task.outcome, func.count())
            .where(Task.campaign_id == campaign_id)
            .group_by(Task.status, Task.outcome)
        )
        return (
            {(status, code): n for status, code, n in targets},
            {(status, outcome): n for status, outcome, n in tasks},
        )


def entry(manager: Manager, load: int = 0) -> RosterEntry:
    return RosterEntry(manager.rm_id, manager.grade, manager.branch_id, manager.capacity, manager.active, load)
