"""Small typed builders for test events, made from the contract models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from aiokafka import ConsumerRecord

from contracts import (
    EVENT_TYPES,
    AccountBalance,
    AccountOpened,
    AccountSnapshot,
    Channel,
    CloudEvent,
    Counterparty,
    CustomerUpserted,
    Direction,
    FxRate,
    IdType,
    InteractionKind,
    InteractionRecorded,
    Product,
    ProfileUpdated,
    TransactionPosted,
    build_event,
    parse_event,
)
from runtime.consumer import ConsumedEvent

SOURCE = "core-deposits"


def unique_ref(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


def unique_id_number() -> str:
    """A resident id number no other test uses, so unrelated test customers never merge."""
    return "4401" + str(uuid.uuid4().int)[:13] + "7"


def customer_upserted(
    customer_ref: str,
    *,
    source: str = SOURCE,
    full_name: str = "Wang Wei",
    id_number: str | None = None,
    branch_id: str = "BR01",
    phone: str | None = "13800001234",
    email: str | None = None,
    marketing_consent: bool = True,
    id_type: IdType = IdType.RESIDENT_ID,
    birth_date: date | None = None,
    at: datetime | None = None,
) -> CloudEvent:
    data = CustomerUpserted(
        customer_ref=customer_ref,
        full_name=full_name,
        id_type=id_type,
        id_number=id_number or unique_id_number(),
        branch_id=branch_id,
        phone=phone,
        email=email,
        birth_date=birth_date,
        marketing_consent=marketing_consent,
    )
    return build_event(data, source=source, time=at)


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


def account_snapshot(
    customer_ref: str, account_ref: str, balance: str, business_date: date, *, source: str = SOURCE
) -> CloudEvent:
    data = AccountSnapshot(
        business_date=business_date,
        account_ref=account_ref,
        customer_ref=customer_ref,
        balance=Decimal(balance),
        currency="CNY",
    )
    return build_event(data, source=source)


def transaction_posted(
    customer_ref: str,
    account_ref: str,
    amount: str,
    *,
    direction: Direction = Direction.DEBIT,
    channel: Channel = Channel.MOBILE,
    counterparty: Counterparty = Counterparty.INTERNAL,
    posted_at: datetime | None = None,
    source: str = SOURCE,
) -> CloudEvent:
    data = TransactionPosted(
        transaction_ref=unique_ref("TX"),
        account_ref=account_ref,
        customer_ref=customer_ref,
        amount=Decimal(amount),
        direction=direction,
        currency="CNY",
        channel=channel,
        counterparty=counterparty,
        posted_at=posted_at or datetime.now(UTC),
    )
    return build_event(data, source=source)


def interaction_recorded(
    customer_ref: str,
    kind: InteractionKind,
    *,
    satisfaction: int | None = None,
    note: str | None = None,
    occurred_at: datetime | None = None,
    source: str = SOURCE,
) -> CloudEvent:
    data = InteractionRecorded(
        interaction_ref=unique_ref("IX"),
        customer_ref=customer_ref,
        kind=kind,
        occurred_at=occurred_at or datetime.now(UTC),
        satisfaction=satisfaction,
        note=note,
    )
    return build_event(data, source=source)


def fx_rate(currency: str, rate: str, *, as_of: datetime | None = None) -> CloudEvent:
    data = FxRate(currency=currency, rate_to_cny=Decimal(rate), as_of=as_of or datetime.now(UTC))
    return build_event(data, source="fx-feed")


def profile_updated(
    customer_id: str,
    avg: str,
    *,
    aum: str | None = None,
    at: datetime | None = None,
    branch_id: str = "BR01",
    birth_date: date = date(1980, 5, 17),
    consent: bool | None = True,
    **extra: object,
) -> CloudEvent:
    """A profile view as the profile service publishes it, with the figures tiers are decided on."""
    data = ProfileUpdated.model_validate(
        {
            "customer_id": customer_id,
            "aum_cny": Decimal(aum or avg),
            "aum_avg_30d_cny": Decimal(avg),
            "liabilities_cny": Decimal("0.00"),
            "product_holdings": {Product.TIME_DEPOSIT: 1},
            "tags": [],
            "changed": ["balances"],
            "branch_id": branch_id,
            "birth_date": birth_date,
            "marketing_consent": consent,
            **extra,
        }
    )
    return build_event(data, source="profile", time=at or datetime.now(UTC))


def consumed(topic: str | None, events: Sequence[CloudEvent]) -> list[ConsumedEvent]:
    """Events as a handler receives them from the consumer, for driving a handler directly; with no
    `topic`, each from the topic its type is published on."""
    out = []
    for offset, event in enumerate(events):
        raw = event.to_bytes()
        on = topic or EVENT_TYPES[event.type].topic
        record = ConsumerRecord(on, 0, offset, 0, 0, b"", raw, None, 0, len(raw), ())
        out.append(ConsumedEvent(parse_event(raw, topic=on), record))
    return out
