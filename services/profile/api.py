"""The profile's internal HTTP API: the customer view, read by the gateway."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel

from runtime.errors import NotFound
from runtime.service import SessionDep
from services.profile.models import Account, Customer, SourceRecord
from services.profile.store import ProfileStore

router = APIRouter(prefix="/internal", tags=["customers"])


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
    record_time: datetime | None


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


class CustomerView(BaseModel):
    customer_id: str
    full_name: str | None
    branch_id: str | None
    birth_date: date | None
    marketing_consent: bool | None
    aum_cny: Decimal
    aum_avg_30d_cny: Decimal
    liabilities_cny: Decimal
    unconverted_currencies: list[str]
    source_records: list[SourceRecordView]
    accounts: list[AccountView]
    updated_at: datetime
    last_event_at: datetime | None


async def _view(store: ProfileStore, customer: Customer) -> CustomerView:
    records: list[SourceRecord] = list(await store.source_records(customer.customer_id))
    accounts: list[Account] = list(await store.accounts(customer.customer_id))
    return CustomerView(
        customer_id=customer.customer_id,
        full_name=customer.full_name,
        branch_id=customer.branch_id,
        birth_date=customer.birth_date,
        marketing_consent=customer.marketing_consent,
        aum_cny=customer.aum_cny,
        aum_avg_30d_cny=customer.aum_avg_30d_cny,
        liabilities_cny=customer.liabilities_cny,
        unconverted_currencies=list(customer.unconverted_currencies),
        source_records=[SourceRecordView.model_validate(r, from_attributes=True) for r in records],
        accounts=[AccountView.model_validate(a, from_attributes=True) for a in accounts],
        updated_at=customer.updated_at,
        last_event_at=customer.last_event_at,
    )


@router.get("/customers/{customer_id}", response_model=CustomerView, summary="A customer's unified view")
async def get_customer(customer_id: str, session: SessionDep) -> CustomerView:
    store = ProfileStore(session)
    customer = await store.customer(customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return await _view(store, customer)


@router.get(
    "/customers/by-ref/{source}/{customer_ref}",
    response_model=CustomerView,
    summary="A customer by a source system's own reference",
)
async def get_customer_by_ref(source: str, customer_ref: str, session: SessionDep) -> CustomerView:
    store = ProfileStore(session)
    customer = await store.customer_by_ref(source, customer_ref)
    if customer is None:
        raise NotFound(f"no customer known to {source} as {customer_ref}")
    return await _view(store, customer)
