"""The 360 view: fetched from the three services at once, scoped and masked for the caller."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from runtime.errors import NotFound
from services.gateway.auth import Principal, Role
from services.gateway.clients import Upstreams
from services.gateway.masking import can_see_clear, mask_email, mask_phone


class SourceRecordOut(BaseModel):
    source: str
    customer_ref: str
    full_name: str | None
    id_type: str | None
    id_number: str | None = Field(description="Masked to the last four characters at rest.")
    phone: str | None
    email: str | None
    branch_id: str | None
    marketing_consent: bool | None
    record_time: datetime | None


class AccountOut(BaseModel):
    source: str
    account_ref: str
    product: str | None
    currency: str | None
    status: str
    opened_on: date | None
    closed_on: date | None
    maturity_date: date | None
    balance: Decimal | None
    balance_as_of: datetime | None


class TierOut(BaseModel):
    tier: str
    since: datetime
    measure_cny: Decimal


class TaskOut(BaseModel):
    task_id: str
    action: str
    reason: str
    priority: int
    due_at: datetime
    rm_id: str | None
    status: str


class FreshnessOut(BaseModel):
    profile_updated_at: datetime
    last_event_at: datetime | None


class Customer360(BaseModel):
    """The unified view of one customer as the caller may see it."""

    customer_id: str
    full_name: str | None
    branch_id: str | None
    birth_date: date | None
    marketing_consent: bool | None
    aum_cny: Decimal
    aum_avg_30d_cny: Decimal
    liabilities_cny: Decimal
    unconverted_currencies: list[str]
    tier: TierOut | None
    relationship_manager: str | None
    source_records: list[SourceRecordOut]
    accounts: list[AccountOut]
    open_tasks: list[TaskOut]
    freshness: FreshnessOut


def in_scope(principal: Principal, branch_id: str | None, rm_id: str | None) -> bool:
    """Whether the caller may see a customer of this branch and RM."""
    if principal.role in (Role.ADMIN, Role.ANALYST):
        return True
    if principal.role is Role.SUPERVISOR:
        return branch_id is not None and branch_id == principal.branch_id
    if principal.role is Role.RM:
        return rm_id is not None and rm_id == principal.rm_id
    return False


async def customer_360(
    upstreams: Upstreams, principal: Principal, profile_path: str, unmasked_roles: list[str]
) -> Customer360:
    """Assemble the view; a customer out of the caller's scope is reported as not found."""
    profile = await upstreams.profile.get(profile_path)
    if profile is None:
        raise NotFound("customer not found")
    customer_id = profile["customer_id"]
    tier, engagement = await asyncio.gather(
        upstreams.scoring.get(f"/internal/customers/{customer_id}/tier"),
        upstreams.engagement.get(f"/internal/customers/{customer_id}"),
    )
    engagement = engagement or {"rm_id": None, "open_tasks": []}
    if not in_scope(principal, profile.get("branch_id"), engagement.get("rm_id")):
        raise NotFound("customer not found")
    clear = can_see_clear(principal.role.value, unmasked_roles)
    return Customer360(
        customer_id=customer_id,
        full_name=profile["full_name"],
        branch_id=profile["branch_id"],
        birth_date=profile["birth_date"],
        marketing_consent=profile["marketing_consent"],
        aum_cny=profile["aum_cny"],
        aum_avg_30d_cny=profile["aum_avg_30d_cny"],
        liabilities_cny=profile["liabilities_cny"],
        unconverted_currencies=profile["unconverted_currencies"],
        tier=TierOut.model_validate(tier) if tier else None,
        relationship_manager=engagement.get("rm_id"),
        source_records=[_source_record(r, clear) for r in profile["source_records"]],
        accounts=[AccountOut.model_validate(a) for a in profile["accounts"]],
        open_tasks=[TaskOut.model_validate(t) for t in engagement["open_tasks"]],
        freshness=FreshnessOut(profile_updated_at=profile["updated_at"], last_event_at=profile["last_event_at"]),
    )


def _source_record(record: dict[str, Any], clear: bool) -> SourceRecordOut:
    return SourceRecordOut(
        source=record["source"],
        customer_ref=record["customer_ref"],
        full_name=record["full_name"],
        id_type=record["id_type"],
        id_number=record["id_number_masked"],
        phone=record["phone"] if clear else mask_phone(record["phone"]),
        email=record["email"] if clear else mask_email(record["email"]),
        branch_id=record["branch_id"],
        marketing_consent=record["marketing_consent"],
        record_time=record["record_time"],
    )
