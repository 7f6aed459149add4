"""The engagement service's internal HTTP API: tasks by customer and RM worklists."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from runtime.service import SessionDep
from services.engagement.store import EngagementStore

router = APIRouter(prefix="/internal", tags=["tasks"])


class TaskView(BaseModel):
    task_id: str
    customer_id: str
    action: str
    reason: str
    priority: int
    due_at: datetime
    rm_id: str | None
    branch_id: str | None
    status: str
    outcome: str | None
    created_at: datetime
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskView]
    next_cursor: str | None


class CustomerEngagement(BaseModel):
    customer_id: str
    tier: str | None
    rm_id: str | None
    branch_id: str | None
    open_tasks: list[TaskView]


@router.get(
    "/customers/{customer_id}",
    response_model=CustomerEngagement,
    summary="A customer's tier as engagement knows it, assigned RM and open tasks",
)
async def customer_engagement(customer_id: str, session: SessionDep) -> CustomerEngagement:
    store = EngagementStore(session)
    known = (await store.customers([customer_id])).get(customer_id)
    tasks = await store.open_tasks(customer_id)
    return CustomerEngagement(
        customer_id=customer_id,
        tier=known.tier if known else None,
        rm_id=known.rm_id if known else None,
        branch_id=known.branch_id if known else None,
        open_tasks=[TaskView.model_validate(t, from_attributes=True) for t in tasks],
    )


@router.get("/customers/{customer_id}/tasks", response_model=list[TaskView], summary="A customer's open tasks")
async def customer_tasks(customer_id: str, session: SessionDep) -> list[TaskView]:
    tasks = await EngagementStore(session).open_tasks(customer_id)
    return [TaskView.model_validate(t, from_attributes=True) for t in tasks]


@router.get("/tasks", response_model=TaskPage, summary="Tasks by RM and status, by cursor")
async def list_tasks(
    session: SessionDep,
    rm_id: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TaskPage:
    tasks = await EngagementStore(session).tasks(rm_id=rm_id, status=status, after=cursor, limit=limit)
    items = [TaskView.model_validate(t, from_attributes=True) for t in tasks]
    return TaskPage(items=items, next_cursor=items[-1].task_id if len(items) == limit else None)
