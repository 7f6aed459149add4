"""RM worklists and the roster under `/v1`: tasks (read and move along) and managers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from runtime.errors import NotFound
from runtime.service import RuntimeDep
from services.gateway.api import ID_PATTERN, Cursor, Limit, UpstreamsDep, audited, problems
from services.gateway.auth import ACCESS_REFUSED, Principal, PrincipalDep, Role, admitting, require
from services.gateway.views import TaskOut, in_scope, scope_filters

router = APIRouter(prefix="/v1")
TaskId = Annotated[str, Path(max_length=64, pattern=ID_PATTERN)]
RmId = Annotated[str, Path(max_length=64, pattern=ID_PATTERN)]


class TaskView(TaskOut):
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class TaskPage(BaseModel):
    items: list[TaskView]
    next_cursor: str | None


class TaskChange(BaseModel):
    """Move a task along: `in_progress`, `done` with an outcome, or `dismissed` with a note."""

    status: Literal["in_progress", "done", "dismissed"]
    outcome: Literal["reached", "product_sold", "declined", "not_reached", "wrong_contact"] | None = Field(
        default=None, description="Required with `done`; the first three count as contact with the customer."
    )
    note: str | None = Field(default=None, max_length=2000, description="Required with `dismissed`: why.")

    model_config = {"json_schema_extra": {"examples": [{"status": "done", "outcome": "reached"}]}}


class Manager(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Zhou Min"])
    grade: str = Field(min_length=1, max_length=64, examples=["wealth_manager"])
    branch_id: str = Field(min_length=1, max_length=64, examples=["BR01"])
    capacity: int = Field(ge=0, le=100_000, description="Most customers the RM serves.", examples=[150])
    active: bool = True


class ManagerView(Manager):
    rm_id: str
    load: int = Field(description="Customers assigned now.")
    updated_at: datetime


class ManagerPage(BaseModel):
    items: list[ManagerView]
    next_cursor: str | None


@router.get(
    "/tasks",
    response_model=TaskPage,
    tags=["tasks"],
    summary="RM worklists",
    description="Tasks soonest due first, by `rm_id`, `status` (or `overdue`), `action`, `due_before`, "
    "`branch_id` and `queue=true` (the branch queue: no RM yet). An `rm` sees only their own tasks, a "
    "`supervisor` their branch's. Every customer the page names is recorded in the audit log.",
    responses=problems(403, 422, 503),
)
async def list_tasks(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    clients: UpstreamsDep,
    rm_id: Annotated[str | None, Query(max_length=64)] = None,
    branch_id: Annotated[str | None, Query(max_length=64)] = None,
    queue: bool | None = None,
    status: Literal["open", "in_progress", "done", "dismissed", "overdue"] | None = None,
    action: Annotated[str | None, Query(max_length=64, examples=["retention_call"])] = None,
    due_before: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> TaskPage:
    require(principal, Role.RM, Role.SUPERVISOR, Role.ANALYST, Role.ADMIN)
    scoped = scope_filters(principal, rm_id, branch_id)

    async def call() -> TaskPage:
        if scoped is None or (principal.role is Role.RM and queue):
            return TaskPage(items=[], next_cursor=None)
        params: dict[str, Any] = {
            "rm_id": scoped[0],
            "branch_id": scoped[1],
            "queue": None if queue is None else str(queue).lower(),
            "status": status,
            "action": action,
            "due_before": due_before.isoformat() if due_before else None,
            "cursor": cursor,
            "limit": limit,
        }
        found = await clients.engagement.get_required(
            "/internal/tasks", "tasks", {k: v for k, v in params.items() if v is not None}
        )
        return TaskPage.model_validate(found)

    return await audited(
        runtime, principal, call(), route="/v1/tasks", named=lambda page: [t.customer_id for t in page.items]
    )


@router.patch(
    "/tasks/{task_id}",
    response_model=TaskView,
    tags=["tasks"],
    summary="Move a task along",
    description="`open` → `in_progress` → `done` (with an outcome) or `dismissed` (with a note). An `rm` may "
    "move only their own tasks, a `supervisor` their branch's; another's task answers 404.",
    responses=problems(403, 404, 409, 422, 503),
)
async def change_task(
    task_id: TaskId,
    change: TaskChange,
    principal: Annotated[Principal, admitting(Role.RM, Role.SUPERVISOR, Role.ADMIN)],
    runtime: RuntimeDep,
    clients: UpstreamsDep,
) -> TaskView:

    async def call() -> TaskView:
        task = await clients.engagement.get(f"/internal/tasks/{task_id}")
        if task is None:
            raise NotFound("task not found")
        if not in_scope(principal, task.get("branch_id"), task.get("rm_id")):
            ACCESS_REFUSED.labels("out_of_scope").inc()
            raise NotFound("task not found")
        body = change.model_dump(exclude_none=True)
        return TaskView.model_validate(
            await clients.engagement.request("PATCH", f"/internal/tasks/{task_id}", json=body)
        )

    return await audited(
        runtime, principal, call(), route="/v1/tasks/{task_id}", method="PATCH", named=lambda t: [t.customer_id]
    )


@router.get(
    "/managers",
    response_model=ManagerPage,
    tags=["managers"],
    summary="The RM roster",
    description="Each RM with their grade, branch, capacity, whether active, and how many customers they have. "
    "A `supervisor` sees their branch.",
    responses=problems(403, 503),
)
async def list_managers(
    principal: PrincipalDep,
    clients: UpstreamsDep,
    branch_id: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 100,
) -> ManagerPage:
    require(principal, Role.SUPERVISOR, Role.ANALYST, Role.ADMIN)
    if principal.role is Role.SUPERVISOR:
        if branch_id not in (None, principal.branch_id):
            return ManagerPage(items=[], next_cursor=None)
        branch_id = principal.branch_id
    params = {k: v for k, v in {"branch_id": branch_id, "cursor": cursor, "limit": limit}.items() if v is not None}
    return ManagerPage.model_validate(await clients.engagement.get_required("/internal/managers", "managers", params))


@router.put(
    "/managers/{rm_id}",
    response_model=ManagerView,
    tags=["managers"],
    summary="Add or change an RM",
    description="An RM made inactive, or moved to another grade or branch, gives up the customers that no longer "
    "fit; they are reassigned (open tasks follow) or wait in the branch queue. An RM with room takes customers "
    "waiting in their branch's queue. A `supervisor` manages their own branch only.",
    responses=problems(403, 422, 503),
)
async def put_manager(
    rm_id: RmId,
    body: Manager,
    principal: Annotated[Principal, admitting(Role.SUPERVISOR, Role.ADMIN)],
    clients: UpstreamsDep,
) -> ManagerView:
    if principal.role is Role.SUPERVISOR:
        current = await clients.engagement.get(f"/internal/managers/{rm_id}")
        branches = {body.branch_id, *([current["branch_id"]] if current else [])}
        if branches != {principal.branch_id}:
            raise NotFound("manager not found in your branch")
    return ManagerView.model_validate(
        await clients.engagement.request("PUT", f"/internal/managers/{rm_id}", json=body.model_dump())
    )
