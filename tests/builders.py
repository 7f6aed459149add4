"""Small typed builders for test events, made from the contract models."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from contracts import (
    AccountBalance,
    AccountOpened,
    CloudEvent,
    CustomerUpserted,
    IdType,
    Product,
    build_event,
)

SOURCE = "core-deposits"


def unique_ref(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


def customer_upserted(
    customer_ref: str,
    *,
    source: str = SOURCE,
    full_name: str = "Wang Wei",
    id_number: str = "110101199001011234",
    branch_id: str = "BR01",
    phone: str | None = "13800001234",
    marketing_consent: bool = True,
) -> CloudEvent:
    data = CustomerUpserted(
        customer_ref=customer_ref,
        full_name=full_name,
        id_type=IdType.RESIDENT_ID,
        id_number=id_number,
        branch_id=branch_id,
        phone=phone,
        marketing_consent=marketing_consent,
    )
    return build_event(data, source=source)


def account_opened(
    customer_ref: str,
    account_ref: str,
    *,
    product: Product = Product.TIME_DEPOSIT,
    currency: str = "CNY",
    source: str = SOURCE,
    at: datetime | None = None,
) -> CloudEvent:
    """An account opening; `at` is the envelope time (default: now)."""
    data = AccountOpened(
        account_ref=account_ref,
        customer_ref=customer_ref,
        product=product,
        currency=currency,
        opened_on=date(2026, 1, 5),
    )
    return build_event(data, source=source, time=at)


def account_balance(
    customer_ref: str,
    account_ref: str,
    balance: str,
    *,
    version: int = 1,
    currency: str = "CNY",
    source: str = SOURCE,
    as_of: datetime | None = None,
    at: datetime | None = None,
) -> CloudEvent:
    """A balance event; `at` is the envelope time (default: now)."""
    data = AccountBalance(
        account_ref=account_ref,
        customer_ref=customer_ref,
        balance=Decimal(balance),
        currency=currency,
        as_of=as_of or datetime.now(UTC),
        version=version,
    )
    return build_event(data, source=source, time=at)
