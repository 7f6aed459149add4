"""The profile's internal HTTP API, read and driven by the gateway.

The customer view (by id, following merges, or by a source's reference), search, timeline,
daily AUM history, data quality, and the two admin operations: split and erasure.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from contracts import CustomerErased, CustomerSplit
from contracts import SourceRecord as SourceRecordRef
from runtime.errors import NotFound, Unprocessable
from runtime.paging import decode_time_cursor, encode_time_cursor
from runtime.service import PublisherDep, ReadSessionDep, RuntimeDep, SessionDep
from services.profile.domain import daily_aum
from services.profile.models import Customer
from services.profile.store import ProfileStore, customer_view_row, new_customer_id
from services.profile.view import ViewBuilder

router = APIRouter(prefix="/internal", tags=["customers"])
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


class SourceRecordView(BaseModel):
    source: str
    customer_ref: str
    provisional: bool
    full_name: str | None
    id_type: str | None
    id_number_masked: str | None
    phone: str | None
    email: str | None
    branch_id: str | None
    marketing_consent: bool | None
    onboarded_on: date | None
    record_time: datetime | None
    split_guarded: bool = Field(description="Split off by an admin: never merges again on this identity.")


class AccountView(BaseModel):
    source: str
    account_ref: str
    customer_ref: str
    product: str | None
    currency: str | None
    status: str
    opened_on: date | None
    closed_on: date | None
    maturity_date: date | None
    balance: Decimal | None
    balance_version: int | None
    balance_as_of: datetime | None
    snapshot_on: date | None = Field(description="The newest business day a core-system snapshot settled.")


class CustomerView(BaseModel):
    customer_id: str
    merged_ids: list[str] = Field(description="Golden ids merged into this customer; they redirect here.")
    full_name: str | None
    branch_id: str | None
    birth_date: date | None
    marketing_consent: bool | None
    customer_since: date | None
    aum_cny: Decimal
    aum_avg_30d_cny: Decimal
    liabilities_cny: Decimal
    unconverted_currencies: list[str] = Field(description="Currencies held without a rate yet: not in AUM.")
    product_holdings: dict[str, int]
    tags: list[str]
    tag_reasons: dict[str, str]
    behaviour: dict[str, Any] | None
    interactions: dict[str, Any] | None
    source_records: list[SourceRecordView]
    accounts: list[AccountView]
    updated_at: datetime
    last_event_at: datetime | None
    average_on: date | None = Field(description="Business day the 30-day average was computed for.")
    erased_at: datetime | None


class CustomerSummary(BaseModel):
    customer_id: str
    full_name: str | None
    branch_id: str | None
    aum_cny: Decimal
    aum_avg_30d_cny: Decimal
    tags: list[str]


class CustomerPage(BaseModel):
    items: list[CustomerSummary]
    next_cursor: str | None


class TimelineItem(BaseModel):
    at: datetime
    kind: str = Field(description="account_opened, account_closed, transaction, an interaction kind, merge, split, ...")
    source: str | None
    ref: str
    detail: str


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None


class DailyAum(BaseModel):
    business_date: date
    aum_cny: Decimal


class SplitRequest(BaseModel):
    source_records: list[SourceRecordRef] = Field(min_length=1, description="The records to move to a new customer.")
    reason: str = Field(min_length=1, max_length=500, description="Why, as the admin states it.")
    actor: str = Field(min_length=1, max_length=200, description="Who asked for the split.")


class SplitResult(BaseModel):
    customer_id: str
    new_customer_id: str
    source_records: list[SourceRecordRef]


class ErasureResult(BaseModel):
    customer_id: str
    erased_at: datetime


class SourceFreshnessView(BaseModel):
    source: str
    last_event_at: datetime
    last_processed_at: datetime
    last_lag_seconds: float
    events_total: int


class ReconciliationBySource(BaseModel):
    source: str
    differences: int
    accounts: int
    last_detected_at: datetime


class DifferenceView(BaseModel):
    id: int
    source: str
    account_ref: str
    customer_id: str
    business_date: date
    currency: str
    expected: Decimal = Field(description="The core system's end-of-day snapshot balance (the authority).")
    found: Decimal = Field(description="The running balance the profile held for that day.")
    detected_at: datetime


class DataQuality(BaseModel):
    sources: list[SourceFreshnessView]
    reconciliation: list[ReconciliationBySource]
    recent_differences: list[DifferenceView]
    identity: dict[str, int] = Field(description="Merges, splits, refused merges and erasures so far.")


class DifferencePage(BaseModel):
    items: list[DifferenceView]
    next_cursor: str | None


def _views(request: Request) -> ViewBuilder:
    views: ViewBuilder = request.app.state.views
    return views


async def _live(store: ProfileStore, customer_id: str, *, lock: bool = False) -> Customer:
    customer = await store.customer(customer_id, lock=lock)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return customer


def _view(row: Any) -> CustomerView:
    """A customer's view from its one-statement read (`customer_view_row`)."""
    holdings: dict[str, int] = {}
    for account in row.accounts:
        if account["status"] == "open" and account["product"]:
            holdings[account["product"]] = holdings.get(account["product"], 0) + 1
    return CustomerView(
        customer_id=row.customer_id,
        merged_ids=row.merged_ids,
        full_name=row.full_name,
        branch_id=row.branch_id,
        birth_date=row.birth_date,
        marketing_consent=row.marketing_consent,
        customer_since=row.customer_since,
        aum_cny=row.aum_cny,
        aum_avg_30d_cny=row.aum_avg_30d_cny,
        liabilities_cny=row.liabilities_cny,
        unconverted_currencies=row.unconverted_currencies,
        product_holdings=dict(sorted(holdings.items())),
        tags=row.tags,
        tag_reasons=row.tag_reasons,
        behaviour=row.behaviour,
        interactions=row.interactions,
        source_records=row.source_records,
        accounts=row.accounts,
        updated_at=row.updated_at,
        last_event_at=row.last_event_at,
        average_on=row.average_on,
        erased_at=row.erased_at,
    )


@router.get("/customers", response_model=CustomerPage, summary="Search customers by name prefix, branch and tag")
async def search_customers(
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=100, description="Name prefix, case-insensitive.")] = None,
    branch_id: str | None = None,
    tag: str | None = None,
    customer_id: Annotated[list[str] | None, Query(max_length=500, description="Only these customers.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CustomerPage:
    found = await ProfileStore(session).search(
        name_prefix=q, branch_id=branch_id, tag=tag, ids=customer_id, after=cursor, limit=limit
    )
    items = [CustomerSummary.model_validate(c, from_attributes=True) for c in found]
    return CustomerPage(items=items, next_cursor=items[-1].customer_id if len(items) == limit else None)


@router.get("/customers/{customer_id}", response_model=CustomerView, summary="A customer's unified view")
async def get_customer(customer_id: str, runtime: RuntimeDep) -> CustomerView:
    row = await customer_view_row(runtime.engine, customer_id=customer_id)
    if row is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return _view(row)


@router.get(
    "/customers/by-ref/{source}/{customer_ref}",
    response_model=CustomerView,
    summary="A customer by a source system's own reference",
)
async def get_customer_by_ref(source: str, customer_ref: str, runtime: RuntimeDep) -> CustomerView:
    row = await customer_view_row(runtime.engine, source_ref=(source, customer_ref))
    if row is None:
        raise NotFound(f"no customer known to {source} as {customer_ref}")
    return _view(row)


@router.get(
    "/customers/{customer_id}/daily-aum",
    response_model=list[DailyAum],
    summary="End-of-day AUM in CNY per business day (carried forward), oldest first",
)
async def get_daily_aum(
    customer_id: str,
    request: Request,
    session: ReadSessionDep,
    days: Annotated[int, Query(ge=1, le=400)] = 30,
) -> list[DailyAum]:
    store = ProfileStore(session)
    customer = await _live(store, customer_id)
    views = _views(request)
    today = views.business_day(request.app.state.runtime.clock.now())
    accounts = (await store.accounts_of([customer.customer_id]))[customer.customer_id]
    history = await store.balance_history(
        [(a.source, a.account_ref) for a in accounts], today - timedelta(days=days - 1), today
    )
    series = daily_aum(accounts, history, await store.rates(), today, days)
    return [DailyAum(business_date=day, aum_cny=value) for day, value in series]


@router.get(
    "/customers/{customer_id}/timeline",
    response_model=TimelinePage,
    summary="What happened to the customer, newest first",
)
async def get_timeline(
    customer_id: str,
    session: ReadSessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    large_from: Annotated[
        Decimal | None, Query(ge=0, description="Only transactions of at least this amount (in their currency).")
    ] = None,
) -> TimelinePage:
    store = ProfileStore(session)
    customer = await _live(store, customer_id)
    ids = [customer.customer_id, *await store.merged_ids(customer.customer_id)]
    after = None
    if cursor:
        at, (kind, ref) = decode_time_cursor(cursor, 2)
        after = (at, kind, ref)
    rows = await store.timeline(ids, after=after, limit=limit, large_from=large_from)
    items = [TimelineItem.model_validate(dict(r)) for r in rows]
    last = items[-1] if len(items) == limit else None
    return TimelinePage(items=items, next_cursor=encode_time_cursor(last.at, last.kind, last.ref) if last else None)


@router.post(
    "/customers/{customer_id}/split",
    response_model=SplitResult,
    status_code=201,
    summary="Undo a wrong merge: move named source records to a new customer",
)
async def split_customer(
    customer_id: str, body: SplitRequest, request: Request, session: SessionDep, publisher: PublisherDep
) -> SplitResult:
    store = ProfileStore(session)
    customer = await _live(store, customer_id, lock=True)  # no consumer writes for it meanwhile
    cid = customer.customer_id
    wanted = {(r.source, r.customer_ref) for r in body.source_records}
    moving = await store.records_of(cid, wanted)
    missing = sorted(wanted - {(r.source, r.customer_ref) for r in moving})
    if missing:
        raise Unprocessable(
            f"source records {', '.join(f'{s}/{r}' for s, r in missing)} are not linked to customer {cid}",
            missing=[{"source": s, "customer_ref": r} for s, r in missing],
        )
    if len(moving) == len(await store.source_records(cid)):
        raise Unprocessable(f"splitting off every source record of {cid} would leave it empty; name fewer records")
    now = publisher.clock.now()
    new_id = new_customer_id()
    moved = sorted(wanted)
    await store.split_off(cid, moving, new_id)
    await store.record_identity_changes(
        [
            {
                "kind": "split",
                "customer_id": cid,
                "other_customer_id": new_id,
                "source_records": [list(ref) for ref in moved],
                "reason": body.reason,
                "actor": body.actor,
                "at": now,
            }
        ]
    )
    refs = [SourceRecordRef(source=s, customer_ref=r) for s, r in moved]
    publisher.publish(CustomerSplit(customer_id=cid, new_customer_id=new_id, source_records=refs, reason=body.reason))
    await store.refresh_identity([cid, new_id])
    await _views(request).recompute(publisher, store, {cid: {"split"}, new_id: {"split"}})
    return SplitResult(customer_id=cid, new_customer_id=new_id, source_records=refs)


@router.delete(
    "/customers/{customer_id}",
    response_model=ErasureResult,
    summary="Erase the customer's personal data (right to deletion); figures stay anonymous",
)
async def erase_customer(
    customer_id: str,
    request: Request,
    session: SessionDep,
    publisher: PublisherDep,
    actor: Annotated[str, Query(min_length=1, max_length=200, description="Who asked for the erasure.")] = "admin",
) -> ErasureResult:
    store = ProfileStore(session)
    customer = await _live(store, customer_id, lock=True)  # no consumer writes for it meanwhile
    cid = customer.customer_id
    if customer.erased_at is not None:
        return ErasureResult(customer_id=cid, erased_at=customer.erased_at)
    now = publisher.clock.now()
    merged = await store.merged_ids(cid)
    await store.erase(cid, now)
    await store.record_identity_changes(
        [
            {
                "kind": "erasure",
                "customer_id": cid,
                "other_customer_id": None,
                "source_records": [],
                "reason": "right to deletion",
                "actor": actor,
                "at": now,
            }
        ]
    )
    for erased in [cid, *merged]:
        publisher.publish(CustomerErased(customer_id=erased, erased_at=now))
    await _views(request).recompute(publisher, store, {cid: {"erasure"}})
    return ErasureResult(customer_id=cid, erased_at=now)


@router.get(
    "/data-quality", response_model=DataQuality, summary="Source freshness, reconciliation and identity figures"
)
async def data_quality(session: SessionDep) -> DataQuality:
    store = ProfileStore(session)
    return DataQuality(
        sources=[SourceFreshnessView.model_validate(s, from_attributes=True) for s in await store.freshness()],
        reconciliation=[ReconciliationBySource.model_validate(r) for r in await store.reconciliation_summary()],
        recent_differences=[
            DifferenceView.model_validate(d, from_attributes=True)
            for d in await store.differences(before_id=None, limit=20)
        ],
        identity=await store.identity_change_counts(),
    )


@router.get(
    "/reconciliation-differences",
    response_model=DifferencePage,
    summary="Every snapshot difference found, newest first",
)
async def reconciliation_differences(session: SessionDep, limit: Limit = 100, cursor: Cursor = None) -> DifferencePage:
    if cursor is not None and not cursor.isdigit():
        raise Unprocessable("the cursor is not one this API returned")
    found = await ProfileStore(session).differences(before_id=int(cursor) if cursor else None, limit=limit)
    items = [DifferenceView.model_validate(d, from_attributes=True) for d in found]
    return DifferencePage(items=items, next_cursor=str(items[-1].id) if len(items) == limit else None)
