"""The engagement service's internal HTTP API: a customer's engagement (RM, tasks, suppressions),
worklists, the task lifecycle and the RM roster."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, model_validator

from contracts import TASK_UPDATED, TaskStatus
from runtime.errors import Conflict, NotFound
from runtime.paging import decode_time_cursor, encode_time_cursor
from runtime.service import PublisherDep, RuntimeDep, SessionDep
from services.engagement.audiences import Audiences
from services.engagement.engine import Engagement, task_event
from services.engagement.models import OPEN_STATUSES, Manager, Task
from services.engagement.store import EngagementStore, TaskFilter, engagement_row

router = APIRouter(prefix="/internal", tags=["engagement"])
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


class Outcome(StrEnum):
    """How a task ended; the first three count as contact with the customer."""

    REACHED = "reached"
    PRODUCT_SOLD = "product_sold"
    DECLINED = "declined"
    NOT_REACHED = "not_reached"
    WRONG_CONTACT = "wrong_contact"


CONTACT = frozenset({Outcome.REACHED, Outcome.PRODUCT_SOLD, Outcome.DECLINED})
MOVES: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "done", "dismissed"}),
    "in_progress": frozenset({"done", "dismissed"}),
    "done": frozenset(),
    "dismissed": frozenset(),
}


class TaskView(BaseModel):
    task_id: str
    customer_id: str
    action: str
    reason: str
    priority: int
    due_at: datetime
    rm_id: str | None = Field(description="The assigned RM; null while the task waits in the branch queue.")
    branch_id: str | None
    status: str
    overdue: bool = Field(default=False, description="Still open or in progress after `due_at`.")
    outcome: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


def task_view(task: Task | Mapping[str, Any], now: datetime) -> TaskView:
    """A task (a row, or a dict of its columns) as the API shows it, `overdue` decided here."""
    view = TaskView.model_validate(task, from_attributes=not isinstance(task, Mapping))
    return view.model_copy(update={"overdue": view.status in OPEN_STATUSES and view.due_at < now})


class TaskPage(BaseModel):
    items: list[TaskView]
    next_cursor: str | None


class SuppressionView(BaseModel):
    action: str
    code: str = Field(description="`open_task`, `cooldown`, `no_consent` or `weekly_cap`.")
    reason: str = Field(description="Why no task was created, the latest time.")
    proposed_reason: str = Field(description="Why the rule wanted one.")
    first_at: datetime
    last_at: datetime
    count: int = Field(description="How many times this decision was taken.")


class CustomerEngagement(BaseModel):
    customer_id: str
    tier: str | None
    on_watch_since: datetime | None
    rm_id: str | None = Field(description="The assigned RM; null when the branch serves the customer.")
    branch_id: str | None
    last_contact_at: datetime | None
    open_tasks: list[TaskView]


class TaskChange(BaseModel):
    """Move a task along: `in_progress`, `done` with an outcome, or `dismissed` with a reason."""

    status: TaskStatus
    outcome: Outcome | None = Field(default=None, description="Required with `done`.")
    note: str | None = Field(default=None, max_length=2000, description="Required with `dismissed`: why.")

    @model_validator(mode="after")
    def _complete(self) -> TaskChange:
        if self.status is TaskStatus.DONE and self.outcome is None:
            raise ValueError("a task done needs an outcome")
        if self.status is TaskStatus.DISMISSED and not self.note:
            raise ValueError("a dismissed task needs a note saying why")
        return self


class ManagerIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    grade: str = Field(min_length=1, description="Such as `wealth_manager`, as the tiers need them.")
    branch_id: str = Field(min_length=1)
    capacity: int = Field(ge=0, le=100_000, description="Most customers the RM serves.")
    active: bool = True


class ManagerView(ManagerIn):
    rm_id: str
    load: int = Field(default=0, description="Customers assigned now.")
    updated_at: datetime


class ManagerPage(BaseModel):
    items: list[ManagerView]
    next_cursor: str | None


def engagement_of(request: Request) -> Engagement:
    engagement: Engagement = request.app.state.engagement
    return engagement


def audiences_of(request: Request) -> Audiences:
    audiences: Audiences = request.app.state.audiences
    return audiences


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    at, (task_id,) = decode_time_cursor(cursor, 1)
    return at, task_id


class CustomerBrief(BaseModel):
    customer_id: str
    tier: str | None
    on_watch_since: datetime | None
    rm_id: str | None
    branch_id: str | None


class CustomerBriefPage(BaseModel):
    items: list[CustomerBrief]
    next_cursor: str | None


@router.get(
    "/customers",
    response_model=CustomerBriefPage,
    summary="Customers by tier, RM, branch or id, in customer id order",
)
async def list_customers(
    session: SessionDep,
    tier: str | None = None,
    rm_id: str | None = None,
    branch_id: str | None = None,
    customer_id: Annotated[list[str] | None, Query(max_length=500, description="Only these customers.")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> CustomerBriefPage:
    rows = await EngagementStore(session).list_customers(
        tier=tier, rm_id=rm_id, branch_id=branch_id, ids=customer_id, after=cursor, limit=limit
    )
    items = [
        CustomerBrief(
            customer_id=r.customer_id, tier=r.tier, on_watch_since=r.watch_since, rm_id=r.rm_id, branch_id=r.branch_id
        )
        for r in rows
    ]
    return CustomerBriefPage(items=items, next_cursor=items[-1].customer_id if len(items) == limit else None)


@router.get(
    "/customers/{customer_id}",
    response_model=CustomerEngagement,
    summary="A customer's assigned RM, watch status and open tasks",
)
async def customer_engagement(customer_id: str, runtime: RuntimeDep) -> CustomerEngagement:
    row = await engagement_row(runtime.engine, customer_id)
    now = runtime.clock.now()
    return CustomerEngagement(
        customer_id=customer_id,
        tier=row.tier,
        on_watch_since=row.watch_since,
        rm_id=row.rm_id,
        branch_id=row.branch_id,
        last_contact_at=row.last_contact_at,
        open_tasks=[task_view(t, now) for t in row.open_tasks],
    )


@router.get("/customers/{customer_id}/tasks", response_model=TaskPage, summary="A customer's tasks, open and closed")
async def customer_tasks(
    customer_id: str, session: SessionDep, publisher: PublisherDep, cursor: Cursor = None, limit: Limit = 100
) -> TaskPage:
    return await _page(
        EngagementStore(session), TaskFilter(customer_id=customer_id), cursor, limit, publisher.clock.now()
    )


@router.get(
    "/customers/{customer_id}/suppressions",
    response_model=list[SuppressionView],
    summary="Why no task was created: every decision of the contact policy not to",
)
async def customer_suppressions(customer_id: str, session: SessionDep) -> list[SuppressionView]:
    rows = await EngagementStore(session).suppressions(customer_id)
    return [SuppressionView.model_validate(r, from_attributes=True) for r in rows]


async def _page(store: EngagementStore, where: TaskFilter, cursor: str | None, limit: int, now: datetime) -> TaskPage:
    tasks = await store.tasks(where, after=_after(cursor), limit=limit)
    items = [task_view(t, now) for t in tasks]
    last = tasks[-1] if len(tasks) == limit else None
    return TaskPage(items=items, next_cursor=encode_time_cursor(last.due_at, last.task_id) if last else None)


@router.get(
    "/tasks",
    response_model=TaskPage,
    summary="Worklists: tasks by RM, branch, queue, status, action and due date, soonest due first",
)
async def list_tasks(
    session: SessionDep,
    runtime: RuntimeDep,
    rm_id: str | None = None,
    branch_id: str | None = None,
    queue: Annotated[bool | None, Query(description="true: the branch queue only (no RM yet).")] = None,
    status: Annotated[
        str | None, Query(pattern="^(open|in_progress|done|dismissed|overdue)$", description="Or `overdue`.")
    ] = None,
    action: str | None = None,
    due_before: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> TaskPage:
    where = TaskFilter(
        rm_id=rm_id, branch_id=branch_id, queue=queue, status=status, action=action, due_before=due_before
    )
    return await _page(EngagementStore(session), where, cursor, limit, runtime.clock.now())


@router.get("/tasks/{task_id}", response_model=TaskView, summary="One task")
async def get_task(task_id: str, session: SessionDep, runtime: RuntimeDep) -> TaskView:
    task = await EngagementStore(session).task(task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task_view(task, runtime.clock.now())


@router.patch(
    "/tasks/{task_id}",
    response_model=TaskView,
    summary="Move a task along: in_progress, done with an outcome, or dismissed with a note",
)
async def change_task(
    task_id: str, change: TaskChange, request: Request, session: SessionDep, publisher: PublisherDep
) -> TaskView:
    store = EngagementStore(session)
    found = await store.task(task_id)
    if found is None:
        raise NotFound(f"no task {task_id}")
    now = publisher.clock.now()
    # The customer first, then the task: the order the consumer takes them in.
    customer = (await store.lock_customers([found.customer_id], now))[found.customer_id]
    task = found
    await session.refresh(task, with_for_update=True)
    if change.status.value not in MOVES[task.status]:
        raise Conflict(f"a task {task.status} cannot move to {change.status.value}")
    task.status = change.status.value
    task.updated_at = now
    if change.status in (TaskStatus.DONE, TaskStatus.DISMISSED):
        task.closed_at = now
        task.outcome = change.outcome.value if change.outcome else f"dismissed: {change.note}"
    if change.outcome in CONTACT:
        # The customer was reached: the revisit clock starts again, and the sweep looks at them now;
        # segments over days since contact see it at once.
        customer.last_contact_at = now
        customer.next_check_at = now
        await audiences_of(request).refresh(publisher, store, {customer.customer_id: customer})
    publisher.publish(task_event(task), type_=TASK_UPDATED)
    return task_view(task, now)


def manager_view(manager: Manager, load: int) -> ManagerView:
    return ManagerView.model_validate(manager, from_attributes=True).model_copy(update={"load": load})


@router.get("/managers", response_model=ManagerPage, summary="The RM roster, by rm_id")
async def list_managers(
    session: SessionDep, branch_id: str | None = None, cursor: Cursor = None, limit: Limit = 100
) -> ManagerPage:
    store = EngagementStore(session)
    managers = await store.managers(branch_id=branch_id, after=cursor, limit=limit)
    loads = await store.loads(m.rm_id for m in managers)
    items = [manager_view(m, loads[m.rm_id]) for m in managers]
    return ManagerPage(items=items, next_cursor=items[-1].rm_id if len(items) == limit else None)


@router.get("/managers/{rm_id}", response_model=ManagerView, summary="One RM with their load")
async def get_manager(rm_id: str, session: SessionDep) -> ManagerView:
    store = EngagementStore(session)
    manager = await store.manager(rm_id)
    if manager is None:
        raise NotFound(f"no manager {rm_id}")
    return manager_view(manager, (await store.loads([rm_id]))[rm_id])


@router.put(
    "/managers/{rm_id}",
    response_model=ManagerView,
    summary="Add or change an RM; their customers and the branch queue are reassigned as needed",
    description="An RM made inactive, or moved to another grade or branch, gives up the customers that no "
    "longer fit: each is reassigned (open tasks follow) or goes to the branch queue. An active RM with room "
    "takes customers waiting in their branch queue whose tier needs their grade.",
)
async def put_manager(
    rm_id: str, body: ManagerIn, request: Request, session: SessionDep, publisher: PublisherDep
) -> ManagerView:
    engagement = engagement_of(request)
    store = EngagementStore(session)
    now = publisher.clock.now()
    before = await store.manager(rm_id, lock=True)
    manager = await store.save_manager({"rm_id": rm_id, **body.model_dump(), "updated_at": now})
    if before is not None and (not body.active or body.grade != before.grade or body.branch_id != before.branch_id):
        for customer in (await store.customers_of_manager(rm_id)).values():
            await engagement.assign(publisher, store, customer, now, None)
    if body.active:
        tiers = [tier for tier, grade in engagement.catalogue.tier_grades.items() if grade == body.grade]
        room = body.capacity - (await store.loads([rm_id]))[rm_id]
        if room > 0 and tiers:
            for customer in (await store.queued_customers(body.branch_id, tiers, room)).values():
                await engagement.assign(publisher, store, customer, now, None)
    return manager_view(manager, (await store.loads([rm_id]))[rm_id])
