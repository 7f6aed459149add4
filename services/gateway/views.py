"""What the gateway answers: assembled from the three services, scoped and masked for the caller.

Scope is decided here and only here (`in_scope`, `scope_filters`): `admin` and `analyst` see every
customer, `supervisor` their branch, `rm` the customers assigned to them. A customer out of scope
is answered exactly like a missing one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from runtime.errors import NotFound
from runtime.paging import decode_time_cursor, encode_time_cursor
from services.gateway.auth import ACCESS_REFUSED, Principal, Role
from services.gateway.clients import Upstreams
from services.gateway.masking import can_see_clear, mask_email, mask_phone


class SourceRecordOut(BaseModel):
    source: str
    customer_ref: str
    full_name: str | None
    id_type: str | None
    id_number: str | None = Field(description="Masked to the last four characters at rest.")
    phone: str | None = Field(description="Masked but for the roles allowed to see it.")
    email: str | None = Field(description="Masked but for the roles allowed to see it.")
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


class WatchOut(BaseModel):
    since: datetime
    floor_cny: Decimal
    downgrade_at: datetime


class TierOut(BaseModel):
    tier: str
    since: datetime
    measure_cny: Decimal
    rm_grade: str | None = None
    watch: WatchOut | None = Field(default=None, description="Set while below the tier's floor (grace period).")


class ReasonOut(BaseModel):
    score: str
    factor: str
    contribution: float
    text: str


class ScoresOut(BaseModel):
    value_score: int
    churn_risk: float
    risk_flags: list[str]
    reasons: list[ReasonOut]
    computed_at: datetime


class TaskOut(BaseModel):
    task_id: str
    customer_id: str | None = None
    action: str
    reason: str
    priority: int
    due_at: datetime
    rm_id: str | None
    branch_id: str | None = None
    status: str
    overdue: bool = False
    outcome: str | None = None


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
    customer_since: date | None
    aum_cny: Decimal
    aum_avg_30d_cny: Decimal
    liabilities_cny: Decimal
    unconverted_currencies: list[str]
    product_holdings: dict[str, int]
    tags: list[str]
    tag_reasons: dict[str, str]
    tier: TierOut | None
    scores: ScoresOut | None
    relationship_manager: str | None
    source_records: list[SourceRecordOut]
    accounts: list[AccountOut]
    open_tasks: list[TaskOut]
    freshness: FreshnessOut


class CustomerListItem(BaseModel):
    customer_id: str
    full_name: str | None
    branch_id: str | None
    tier: str | None
    relationship_manager: str | None
    aum_cny: Decimal | None
    aum_avg_30d_cny: Decimal | None


class CustomerPage(BaseModel):
    items: list[CustomerListItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class TimelineItem(BaseModel):
    at: datetime
    kind: str = Field(
        description="account_opened, account_closed, transaction (large ones), complaint, visit, ..., merge, split, "
        "reconciliation, tier_change, task"
    )
    ref: str
    detail: str


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None


def in_scope(principal: Principal, branch_id: str | None, rm_id: str | None) -> bool:
    """Whether the caller may see a customer (or a task) of this branch and RM."""
    if principal.role in (Role.ADMIN, Role.ANALYST):
        return True
    if principal.role is Role.SUPERVISOR:
        return branch_id is not None and branch_id == principal.branch_id
    if principal.role is Role.RM:
        return rm_id is not None and rm_id == principal.rm_id
    return False


def scope_filters(
    principal: Principal, rm_id: str | None, branch_id: str | None
) -> tuple[str | None, str | None] | None:
    """The (rm_id, branch_id) filters a list must use for the caller, or None when what was asked
    lies outside their scope (the answer is then an empty page)."""
    if principal.role is Role.RM:
        return (principal.rm_id, branch_id) if rm_id in (None, principal.rm_id) else None
    if principal.role is Role.SUPERVISOR:
        return (rm_id, principal.branch_id) if branch_id in (None, principal.branch_id) else None
    return rm_id, branch_id


async def scoped_customer(
    upstreams: Upstreams, principal: Principal, profile_path: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The profile and engagement views of a customer the caller may see; NotFound otherwise."""
    profile = await upstreams.profile.get(profile_path)
    if profile is None:
        raise NotFound("customer not found")
    engagement = await upstreams.engagement.get(f"/internal/customers/{profile['customer_id']}")
    return profile, _in_scope(principal, profile, engagement)


def _in_scope(principal: Principal, profile: dict[str, Any], engagement: dict[str, Any] | None) -> dict[str, Any]:
    """The engagement view (empty when engagement does not know the customer yet) once the caller
    is known to be allowed to see this customer; NotFound, exactly as for a missing one, otherwise."""
    engagement = engagement or {"rm_id": None, "open_tasks": []}
    if not in_scope(principal, profile.get("branch_id"), engagement.get("rm_id")):
        ACCESS_REFUSED.labels("out_of_scope").inc()
        raise NotFound("customer not found")
    return engagement


async def customer_360(
    upstreams: Upstreams,
    principal: Principal,
    profile_path: str,
    unmasked_roles: list[str],
    customer_id: str | None = None,
) -> Customer360:
    """Assemble the view; a customer out of the caller's scope is reported as not found.

    Profile says who the customer is (a by-ref lookup, or the survivor of a merge); engagement
    and scoring are then asked at once. When the golden id is already known (`customer_id`) the
    three are asked at once, and the other two again if profile answers for a survivor. Answers
    are looked at in the order profile, engagement (scope), scoring, so a failure of one service
    tells an out-of-scope caller nothing more than before.
    """
    asked = customer_id
    if asked is None:
        profile = await upstreams.profile.get(profile_path)
        others: Sequence[Any] = ()
    else:
        profile, *others = await asyncio.gather(
            upstreams.profile.get(profile_path), *_engagement_and_standing(upstreams, asked), return_exceptions=True
        )
    if profile is None:
        raise NotFound("customer not found")
    customer_id = str(_answered(profile)["customer_id"])
    if asked != customer_id:
        others = await asyncio.gather(*_engagement_and_standing(upstreams, customer_id), return_exceptions=True)
    engagement = _in_scope(principal, profile, _answered(others[0]))
    standing = _answered(others[1]) or {}
    tier, scores = standing.get("tier"), standing.get("scores")
    clear = can_see_clear(principal.role.value, unmasked_roles)
    return Customer360(
        customer_id=customer_id,
        full_name=profile["full_name"],
        branch_id=profile["branch_id"],
        birth_date=profile["birth_date"],
        marketing_consent=profile["marketing_consent"],
        customer_since=profile.get("customer_since"),
        aum_cny=profile["aum_cny"],
        aum_avg_30d_cny=profile["aum_avg_30d_cny"],
        liabilities_cny=profile["liabilities_cny"],
        unconverted_currencies=profile["unconverted_currencies"],
        product_holdings=profile.get("product_holdings", {}),
        tags=profile.get("tags", []),
        tag_reasons=profile.get("tag_reasons", {}),
        tier=TierOut.model_validate(tier) if tier else None,
        scores=ScoresOut.model_validate(scores) if scores else None,
        relationship_manager=engagement.get("rm_id"),
        source_records=[_source_record(r, clear) for r in profile["source_records"]],
        accounts=[AccountOut.model_validate(a) for a in profile["accounts"]],
        open_tasks=[TaskOut.model_validate(t) for t in engagement["open_tasks"]],
        freshness=FreshnessOut(profile_updated_at=profile["updated_at"], last_event_at=profile["last_event_at"]),
    )


def _answered(result: Any) -> Any:
    """A result of `asyncio.gather(..., return_exceptions=True)`, or the error it holds, raised."""
    if isinstance(result, BaseException):
        raise result
    return result


def _engagement_and_standing(upstreams: Upstreams, customer_id: str) -> tuple[Awaitable[Any], Awaitable[Any]]:
    return (
        upstreams.engagement.get(f"/internal/customers/{customer_id}"),
        upstreams.scoring.get(f"/internal/customers/{customer_id}/standing"),
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


async def customer_list(
    upstreams: Upstreams,
    principal: Principal,
    *,
    q: str | None,
    tier: str | None,
    rm_id: str | None,
    branch_id: str | None,
    cursor: str | None,
    limit: int,
) -> CustomerPage:
    """Search and list in customer id order. Tier and RM filters page through engagement (which
    knows them), a name search through profile; the other side fills in the rest of each item."""
    scoped = scope_filters(principal, rm_id, branch_id)
    if scoped is None:
        return CustomerPage(items=[], next_cursor=None)
    rm_id, branch_id = scoped
    paging: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    if tier is not None or rm_id is not None:
        brief = await upstreams.engagement.get_required(
            "/internal/customers",
            "customers",
            {k: v for k, v in {"tier": tier, "rm_id": rm_id, "branch_id": branch_id, **paging}.items() if v},
        )
        engaged = {b["customer_id"]: b for b in brief["items"]}
        profiles = await _profiles(upstreams, list(engaged), q=q)
        next_cursor = brief["next_cursor"]
        ids = [cid for cid in engaged if cid in profiles]
    else:
        found = await upstreams.profile.get_required(
            "/internal/customers",
            "customers",
            {k: v for k, v in {"q": q, "branch_id": branch_id, **paging}.items() if v},
        )
        profiles = {p["customer_id"]: p for p in found["items"]}
        engaged = await _engaged(upstreams, list(profiles))
        next_cursor = found["next_cursor"]
        ids = list(profiles)
    items = [
        CustomerListItem(
            customer_id=cid,
            full_name=profiles[cid].get("full_name"),
            branch_id=profiles[cid].get("branch_id"),
            tier=engaged.get(cid, {}).get("tier"),
            relationship_manager=engaged.get(cid, {}).get("rm_id"),
            aum_cny=profiles[cid].get("aum_cny"),
            aum_avg_30d_cny=profiles[cid].get("aum_avg_30d_cny"),
        )
        for cid in ids
    ]
    return CustomerPage(items=items, next_cursor=next_cursor)


async def _profiles(upstreams: Upstreams, ids: list[str], *, q: str | None) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    params: list[tuple[str, Any]] = [("customer_id", cid) for cid in ids] + [("limit", 500)]
    if q:
        params.append(("q", q))
    found = await upstreams.profile.get_required("/internal/customers", "customers", params)
    return {p["customer_id"]: p for p in found["items"]}


async def _engaged(upstreams: Upstreams, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    params: list[tuple[str, Any]] = [("customer_id", cid) for cid in ids] + [("limit", 500)]
    found = await upstreams.engagement.get_required("/internal/customers", "customers", params)
    return {b["customer_id"]: b for b in found["items"]}


async def timeline(
    upstreams: Upstreams, customer_id: str, *, cursor: str | None, limit: int, large_from: Decimal
) -> TimelinePage:
    """Profile's events (large transactions only), scoring's tier changes and engagement's tasks,
    newest first, merged under one cursor."""
    after = None
    if cursor:
        at, (kind, ref) = decode_time_cursor(cursor, 2)
        after = (at, kind, ref)
    params: dict[str, Any] = {"limit": limit, "large_from": str(large_from), **({"cursor": cursor} if cursor else {})}
    page, tier, tasks = await asyncio.gather(
        upstreams.profile.get_required(f"/internal/customers/{customer_id}/timeline", "customer", params),
        upstreams.scoring.get(f"/internal/customers/{customer_id}/tier"),
        upstreams.engagement.get(f"/internal/customers/{customer_id}/tasks", {"limit": 500}),
    )
    items = [TimelineItem(at=i["at"], kind=i["kind"], ref=i["ref"], detail=i["detail"]) for i in page["items"]]
    items += [
        TimelineItem(
            at=h["effective_at"],
            kind="tier_change",
            ref=str(h["id"]),
            detail=f"{h['from_tier'] or 'none'} to {h['to_tier']}: {h['reason']}",
        )
        for h in (tier or {}).get("history", [])
    ]
    items += [
        TimelineItem(
            at=t["created_at"],
            kind="task",
            ref=t["task_id"],
            detail=f"{t['action']} ({t['status']}{', ' + t['outcome'] if t.get('outcome') else ''}): {t['reason']}",
        )
        for t in (tasks or {}).get("items", [])
    ]

    def key(item: TimelineItem) -> tuple[datetime, str, str]:
        return item.at, item.kind, item.ref

    merged = sorted((i for i in items if after is None or key(i) < after), key=key, reverse=True)
    more = len(merged) > limit or page["next_cursor"] is not None
    merged = merged[:limit]
    return TimelinePage(
        items=merged,
        next_cursor=encode_time_cursor(merged[-1].at, merged[-1].kind, merged[-1].ref) if more and merged else None,
    )
