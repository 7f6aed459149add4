"""The event registry: every type round-trips through bytes, and parse_event refuses what is not an event."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from contracts import (
    ACCOUNT_BALANCE,
    ACCOUNT_CLOSED,
    ACCOUNT_OPENED,
    ACCOUNT_SNAPSHOT,
    ALL_TOPICS,
    AUDIT_RECORDED,
    BANK_ACCOUNTS,
    BANK_TRANSACTIONS,
    CUSTOMER_ERASED,
    CUSTOMER_MERGED,
    CUSTOMER_SPLIT,
    CUSTOMER_UPSERTED,
    EVENT_TYPES,
    FX_RATE,
    INBOUND_TOPICS,
    INTERACTION_RECORDED,
    OUTBOUND_TOPICS,
    PROFILE_UPDATED,
    SCORE_UPDATED,
    SEGMENT_MEMBERSHIP,
    TASK_CREATED,
    TASK_UPDATED,
    TIER_CHANGED,
    TRANSACTION_POSTED,
    AccountBalance,
    AccountClosed,
    AccountOpened,
    AccountSnapshot,
    AuditRecorded,
    Channel,
    CloudEvent,
    Counterparty,
    CustomerErased,
    CustomerMerged,
    CustomerSplit,
    CustomerUpserted,
    Direction,
    EventSpec,
    FxRate,
    IdType,
    InteractionKind,
    InteractionRecorded,
    InvalidEvent,
    JsonText,
    Product,
    ProfileUpdated,
    ScoreReason,
    ScoreUpdated,
    SegmentMembership,
    SourceRecord,
    TaskEvent,
    TaskStatus,
    TierChanged,
    TransactionPosted,
    build_event,
    dlq_topic,
    parse_event,
)
from runtime.consumer import instant_fields

BEIJING = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 22, 9, 30, tzinfo=BEIJING)
CUSTOMER_REF = "CUST-000123"
CUSTOMER_ID = "C360-7f0c"


def a_customer_upserted(*, id_number: str = "110101199003071234") -> CustomerUpserted:
    return CustomerUpserted(
        customer_ref=CUSTOMER_REF,
        full_name="Li Wei",
        id_type=IdType.RESIDENT_ID,
        id_number=id_number,
        birth_date=date(1990, 3, 7),
        phone="13800000000",
        branch_id="BR-001",
        marketing_consent=True,
    )


def an_account_opened(*, product: Product = Product.TIME_DEPOSIT) -> AccountOpened:
    return AccountOpened(
        account_ref="ACC-1",
        customer_ref=CUSTOMER_REF,
        product=product,
        currency="CNY",
        opened_on=date(2026, 1, 5),
        maturity_date=date(2027, 1, 5),
        interest_rate=Decimal("0.0175"),
    )


def an_account_balance(*, balance: str = "1234.50", version: int = 7) -> AccountBalance:
    return AccountBalance(
        account_ref="ACC-1",
        customer_ref=CUSTOMER_REF,
        balance=Decimal(balance),
        currency="CNY",
        as_of=AT,
        version=version,
    )


def an_account_closed() -> AccountClosed:
    return AccountClosed(account_ref="ACC-1", customer_ref=CUSTOMER_REF, closed_on=date(2026, 11, 21))


def an_account_snapshot() -> AccountSnapshot:
    return AccountSnapshot(
        business_date=date(2026, 11, 21),
        account_ref="ACC-2",
        customer_ref=CUSTOMER_REF,
        balance=Decimal("-3200.00"),
        currency="USD",
    )


def a_transaction_posted(*, amount: str = "88.00") -> TransactionPosted:
    return TransactionPosted(
        transaction_ref="TX-1",
        account_ref="ACC-1",
        customer_ref=CUSTOMER_REF,
        amount=Decimal(amount),
        direction=Direction.DEBIT,
        currency="CNY",
        channel=Channel.MOBILE,
        counterparty=Counterparty.EXTERNAL,
        merchant_category="5411",
        posted_at=AT,
    )


def an_interaction_recorded() -> InteractionRecorded:
    return InteractionRecorded(
        interaction_ref="INT-1",
        customer_ref=CUSTOMER_REF,
        kind=InteractionKind.SURVEY,
        occurred_at=AT,
        satisfaction=4,
        note="Asked about\nwealth products.",
    )


def an_fx_rate() -> FxRate:
    return FxRate(currency="USD", rate_to_cny=Decimal("7.1234"), as_of=AT)


def a_profile_updated() -> ProfileUpdated:
    return ProfileUpdated(
        customer_id=CUSTOMER_ID,
        aum_cny=Decimal("250000.00"),
        aum_avg_30d_cny=Decimal("210000.00"),
        liabilities_cny=Decimal("3200.00"),
        product_holdings={Product.TIME_DEPOSIT: 1, Product.CREDIT_CARD: 2},
        tags=["payroll"],
        changed=["balances"],
        marketing_consent=False,
        unconverted_currencies=["EUR"],
    )


def a_customer_merged() -> CustomerMerged:
    return CustomerMerged(surviving_customer_id=CUSTOMER_ID, merged_customer_id="C360-0a1b", reason="same resident_id")


def a_customer_split() -> CustomerSplit:
    return CustomerSplit(
        customer_id=CUSTOMER_ID,
        new_customer_id="C360-9e9e",
        source_records=[SourceRecord(source="cards", customer_ref="CARD-77")],
        reason="wrong merge on a shared test id",
    )


def a_customer_erased() -> CustomerErased:
    return CustomerErased(customer_id=CUSTOMER_ID, erased_at=AT)


def a_tier_changed() -> TierChanged:
    return TierChanged(
        customer_id=CUSTOMER_ID,
        from_tier=None,
        to_tier="vip",
        reason="30-day average AUM reached 210000.00",
        effective_at=AT,
        measure_cny=Decimal("210000.00"),
    )


def a_score_updated() -> ScoreUpdated:
    return ScoreUpdated(
        customer_id=CUSTOMER_ID,
        value_score=72,
        churn_risk=0.25,
        risk_flags=["credit_card_overdrawn"],
        reasons=[ScoreReason(score="value", factor="aum", contribution=30.5, text="AUM in the top decile")],
    )


def a_task(*, status: TaskStatus = TaskStatus.OPEN) -> TaskEvent:
    return TaskEvent(
        task_id="T-1",
        customer_id=CUSTOMER_ID,
        action="welcome_call",
        reason="entered vip",
        priority=80,
        due_at=AT + timedelta(days=3),
        rm_id=None,
        status=status,
        branch_id="BR-001",
    )


def an_audit_record() -> AuditRecorded:
    return AuditRecorded(
        subject="rm-7",
        role="rm",
        customer_id=CUSTOMER_ID,
        route="/v1/customers/{customer_id}",
        method="GET",
        status=200,
        at=AT,
    )


def a_segment_membership() -> SegmentMembership:
    return SegmentMembership(segment_id="SEG-1", customer_id=CUSTOMER_ID, entered=True, at=AT)


BUILDERS: dict[str, Callable[[], BaseModel]] = {
    CUSTOMER_UPSERTED: a_customer_upserted,
    ACCOUNT_OPENED: an_account_opened,
    ACCOUNT_BALANCE: an_account_balance,
    ACCOUNT_CLOSED: an_account_closed,
    ACCOUNT_SNAPSHOT: an_account_snapshot,
    TRANSACTION_POSTED: a_transaction_posted,
    INTERACTION_RECORDED: an_interaction_recorded,
    FX_RATE: an_fx_rate,
    PROFILE_UPDATED: a_profile_updated,
    CUSTOMER_MERGED: a_customer_merged,
    CUSTOMER_SPLIT: a_customer_split,
    CUSTOMER_ERASED: a_customer_erased,
    TIER_CHANGED: a_tier_changed,
    SCORE_UPDATED: a_score_updated,
    TASK_CREATED: a_task,
    TASK_UPDATED: lambda: a_task(status=TaskStatus.DONE),
    SEGMENT_MEMBERSHIP: a_segment_membership,
    AUDIT_RECORDED: an_audit_record,
}

KEYS = {
    CUSTOMER_UPSERTED: CUSTOMER_REF,
    ACCOUNT_OPENED: CUSTOMER_REF,
    ACCOUNT_BALANCE: CUSTOMER_REF,
    ACCOUNT_CLOSED: CUSTOMER_REF,
    ACCOUNT_SNAPSHOT: CUSTOMER_REF,
    TRANSACTION_POSTED: CUSTOMER_REF,
    INTERACTION_RECORDED: CUSTOMER_REF,
    FX_RATE: "USD",
    PROFILE_UPDATED: CUSTOMER_ID,
    CUSTOMER_MERGED: CUSTOMER_ID,
    CUSTOMER_SPLIT: CUSTOMER_ID,
    CUSTOMER_ERASED: CUSTOMER_ID,
    TIER_CHANGED: CUSTOMER_ID,
    SCORE_UPDATED: CUSTOMER_ID,
    TASK_CREATED: CUSTOMER_ID,
    TASK_UPDATED: CUSTOMER_ID,
    SEGMENT_MEMBERSHIP: CUSTOMER_ID,
    AUDIT_RECORDED: "rm-7",
}


def an_event(type_: str = ACCOUNT_BALANCE, data: BaseModel | None = None) -> CloudEvent:
    return build_event(data or BUILDERS[type_](), source="core-deposits", type_=type_, time=AT)


def with_data(event: CloudEvent, fields: Mapping[str, object]) -> bytes:
    """The event's bytes with data fields replaced or added, as a broken or newer producer would."""
    document = json.loads(event.to_bytes())
    document["data"].update(fields)
    return json.dumps(document).encode()


def with_envelope(event: CloudEvent, attributes: Mapping[str, object]) -> bytes:
    """The event's bytes with envelope attributes replaced, as a broken producer would."""
    document = json.loads(event.to_bytes())
    document.update(attributes)
    return json.dumps(document).encode()


def outcome(raw: bytes | None, topic: str | None = None) -> str | None:
    """None when `raw` is a valid event, else the reason it is not."""
    try:
        parse_event(raw, topic=topic)
    except InvalidEvent as exc:
        return exc.reason
    return None


def reason_for(raw: bytes | None, topic: str | None = None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, topic=topic)
    return caught.value.reason


def test_every_event_type_has_a_builder_and_a_key() -> None:
    assert set(BUILDERS) == set(EVENT_TYPES) == set(KEYS)


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_event_round_trips_through_bytes(type_: str) -> None:
    event = an_event(type_)

    parsed = parse_event(event.to_bytes(), topic=EVENT_TYPES[type_].topic)

    assert parsed.cloud_event() == event
    assert parsed.envelope.model_dump(exclude={"payload"}) == event.model_dump(exclude={"data"})
    assert parsed.data == BUILDERS[type_]()
    assert from_json(parsed.data_text()) == event.data
    assert parsed.spec is EVENT_TYPES[type_]


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_data_kept_as_json_is_read_back_as_it_was(type_: str) -> None:
    data = BUILDERS[type_]()
    kept = json.loads(json.dumps(data.model_dump(mode="json")))  # what a JSONB column gives back

    assert type(data).from_stored(kept) == data  # type: ignore[attr-defined]


def test_data_kept_as_json_is_held_to_the_wire_form() -> None:
    kept = a_profile_updated().model_dump(mode="json") | {"aum_cny": 250000.0}

    with pytest.raises(ValidationError, match="aum_cny"):
        ProfileUpdated.from_stored(kept)
    assert ProfileUpdated.from_stored(kept | {"aum_cny": "250000.00", "added_later": 1}).aum_cny == Decimal("250000.00")


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_data_text_is_the_data_exactly_as_it_arrived(type_: str) -> None:
    event = an_event(type_)
    data = json.dumps(event.data | {"added": {"data": [1, "\u00e9"]}}, separators=(" , ", " : "))
    envelope = json.dumps(event.model_dump(mode="json", exclude={"data"}), separators=(", ", ": "))
    raw = '{ "data" :' + data + ", " + envelope[1:]  # data first, spaced, non-ASCII escaped

    parsed = parse_event(raw.encode(), topic=EVENT_TYPES[type_].topic)

    assert parsed.data_text() == data
    assert isinstance(parsed.data_text(), JsonText)


def test_data_kept_as_json_text_is_read_back_as_the_wire_is() -> None:
    profile = a_profile_updated()
    text = JsonText(profile.model_dump_json())

    assert ProfileUpdated.from_stored(text) == profile
    with pytest.raises(ValidationError, match="aum_cny"):
        ProfileUpdated.from_stored(JsonText(text.replace('"aum_cny":"', '"aum_cny":1,"x":"')))


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_the_instant_fields_are_the_datetimes_of_the_data(type_: str) -> None:
    data = BUILDERS[type_]()
    found = instant_fields(type(data))

    assert {name for name, value in data if isinstance(value, datetime)} <= set(found)
    assert all(isinstance(getattr(data, name), datetime | None) for name in found)


def test_every_inbound_instant_is_checked_against_the_clock() -> None:
    assert {t: instant_fields(EVENT_TYPES[t].model) for t in EVENT_TYPES if EVENT_TYPES[t].topic in INBOUND_TOPICS} == {
        CUSTOMER_UPSERTED: (),
        ACCOUNT_OPENED: (),
        ACCOUNT_BALANCE: ("as_of",),
        ACCOUNT_CLOSED: (),
        ACCOUNT_SNAPSHOT: (),
        TRANSACTION_POSTED: ("posted_at",),
        INTERACTION_RECORDED: ("occurred_at",),
        FX_RATE: ("as_of",),
    }


@pytest.mark.parametrize(("type_", "key"), sorted(KEYS.items()))
def test_key_and_subject_are_the_types_key_field(type_: str, key: str) -> None:
    parsed = parse_event(an_event(type_).to_bytes())

    assert parsed.key == key
    assert parsed.envelope.subject == key


@pytest.mark.parametrize("spec", EVENT_TYPES.values(), ids=lambda spec: spec.type)
def test_model_declares_the_type_it_is_registered_under(spec: EventSpec) -> None:
    declared = getattr(spec.model, "EVENT_TYPES", None) or (getattr(spec.model, "EVENT_TYPE", None),)

    assert spec.type in declared


def test_topics_are_the_inbound_and_outbound_ones_and_each_has_a_dlq() -> None:
    assert ALL_TOPICS == INBOUND_TOPICS + OUTBOUND_TOPICS
    assert {spec.topic for spec in EVENT_TYPES.values()} == set(ALL_TOPICS)
    assert dlq_topic(BANK_ACCOUNTS) == "bank.accounts.v1.dlq"


@pytest.mark.parametrize("balance", ["1234.50", "0.00", "-12.30", "100", "0.00000001", "999999999999999999.99999999"])
def test_money_keeps_its_scale_on_the_wire(balance: str) -> None:
    raw = an_event(data=an_account_balance(balance=balance)).to_bytes()

    assert json.loads(raw)["data"]["balance"] == balance
    parsed = parse_event(raw).data
    assert isinstance(parsed, AccountBalance)
    assert parsed.balance.as_tuple() == Decimal(balance).as_tuple()


@pytest.mark.parametrize("amount", [1234.5, 1234, 0.1])
def test_amount_as_json_number_is_rejected(amount: float) -> None:
    raw = with_data(an_event(TRANSACTION_POSTED), {"amount": amount})

    assert reason_for(raw).startswith("data.amount: Input should be a decimal in a JSON string")


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "1e3", "1,234.50", " 12", "", "+1", "1.123456789"])
def test_amount_that_is_not_a_plain_decimal_string_is_rejected(amount: str) -> None:
    assert reason_for(with_data(an_event(TRANSACTION_POSTED), {"amount": amount})).startswith("data.amount: ")


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00"])
def test_transaction_amount_must_be_positive(amount: str) -> None:
    reason = reason_for(with_data(an_event(TRANSACTION_POSTED), {"amount": amount}))

    assert reason == "data.amount: Input should be greater than 0"


def test_naive_event_time_is_rejected() -> None:
    raw = with_envelope(an_event(), {"time": "2026-11-22T09:30:00"})

    assert reason_for(raw) == "time: Input should have timezone info"


def test_naive_data_time_is_rejected() -> None:
    raw = with_data(an_event(), {"as_of": "2026-11-22T09:30:00"})

    assert reason_for(raw) == "data.as_of: Input should have timezone info"


def test_time_as_json_number_is_rejected() -> None:
    assert reason_for(with_data(an_event(), {"as_of": 1_795_000_000})).startswith("data.as_of: ")


def test_time_keeps_its_offset() -> None:
    parsed = parse_event(an_event().to_bytes())

    assert parsed.envelope.time.utcoffset() == timedelta(hours=8)
    assert b'"time":"2026-11-22T09:30:00+08:00"' in an_event().to_bytes()


def test_unknown_event_type_is_rejected() -> None:
    raw = with_envelope(an_event(), {"type": "bank.account.frozen.v1"})

    assert reason_for(raw) == "unknown event type 'bank.account.frozen.v1'"


def test_event_on_the_wrong_topic_is_rejected() -> None:
    reason = reason_for(an_event(ACCOUNT_BALANCE).to_bytes(), topic=BANK_TRANSACTIONS)

    assert reason == "type bank.account.balance.v1 is not published on topic 'bank.transactions.v1'"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "malformed JSON: EOF while parsing a value at line 1 column 0"),
        (b"{", "malformed JSON: EOF while parsing an object at line 1 column 1"),
        (b"not json", "malformed JSON: expected ident at line 1 column 2"),
        (b"[]", "envelope: Input should be an object"),
        (b"null", "envelope: Input should be an object"),
        (b"\xff\xfe{}", "not UTF-8: invalid start byte at byte 0"),
        (None, "message has no value"),
    ],
)
def test_bytes_that_are_not_an_envelope_are_rejected(raw: bytes | None, reason: str) -> None:
    assert reason_for(raw) == reason


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        ({"specversion": "0.3"}, "specversion: Input should be '1.0'"),
        ({"datacontenttype": "text/xml"}, "datacontenttype: Input should be 'application/json'"),
        ({"id": ""}, "id: String should have at least 1 character"),
        ({"data": None}, "data: Input should be an object"),
    ],
)
def test_envelope_attribute_out_of_contract_is_rejected(envelope: dict[str, object], reason: str) -> None:
    assert reason_for(with_envelope(an_event(), envelope)) == reason


def test_missing_data_field_is_named_in_the_reason() -> None:
    document = json.loads(an_event().to_bytes())
    del document["data"]["version"]

    assert reason_for(json.dumps(document).encode()) == "data.version: Field required"


@pytest.mark.parametrize(
    ("type_", "field", "value"),
    [
        (CUSTOMER_UPSERTED, "marketing_consent", "true"),
        (CUSTOMER_UPSERTED, "marketing_consent", 1),
        (CUSTOMER_UPSERTED, "id_type", "driving_licence"),
        (ACCOUNT_BALANCE, "version", -1),
        (ACCOUNT_BALANCE, "version", "7"),
        (ACCOUNT_BALANCE, "currency", "cny"),
        (ACCOUNT_OPENED, "product", "crypto"),
        (ACCOUNT_OPENED, "opened_on", "22/11/2026"),
        (INTERACTION_RECORDED, "satisfaction", 6),
        (INTERACTION_RECORDED, "satisfaction", 0),
        (FX_RATE, "rate_to_cny", "0"),
        (SCORE_UPDATED, "churn_risk", 1.5),
        (TASK_CREATED, "priority", 0),
        (CUSTOMER_SPLIT, "source_records", []),
    ],
)
def test_data_field_out_of_contract_is_rejected(type_: str, field: str, value: object) -> None:
    assert reason_for(with_data(an_event(type_), {field: value})).startswith(f"data.{field}")


def test_balance_may_be_negative() -> None:
    parsed = parse_event(an_event(data=an_account_balance(balance="-3200.00")).to_bytes()).data

    assert isinstance(parsed, AccountBalance)
    assert parsed.balance == Decimal("-3200.00")


def test_extra_data_fields_from_a_newer_producer_are_accepted() -> None:
    raw = with_data(an_event(), {"ledger": "GL-42", "limits": {"overdraft": "500.00"}})

    assert parse_event(raw).data == an_account_balance()


def test_extension_attributes_are_kept() -> None:
    event = build_event(an_account_balance(), source="core-deposits", correlationid="req-9")

    parsed = parse_event(event.to_bytes())

    assert parsed.envelope.model_extra == {"correlationid": "req-9"}


def test_absent_subject_is_left_out_of_the_bytes() -> None:
    event = CloudEvent.build(ACCOUNT_BALANCE, "core-deposits", an_account_balance())

    assert "subject" not in json.loads(event.to_bytes())
    assert CloudEvent.from_bytes(event.to_bytes()) == event


def test_build_gives_a_fresh_id_and_the_current_time() -> None:
    before = datetime.now(UTC)

    first = build_event(an_account_balance(), source="core-deposits")
    second = build_event(an_account_balance(), source="core-deposits")

    assert first.id != second.id
    assert before <= first.time <= datetime.now(UTC)


def test_task_event_needs_an_explicit_type() -> None:
    with pytest.raises(ValueError, match="pass type_"):
        build_event(a_task(), source="c360-engagement")


def test_build_event_refuses_a_type_that_carries_another_model() -> None:
    with pytest.raises(ValueError, match="carries AccountBalance"):
        build_event(an_account_closed(), source="core-deposits", type_=ACCOUNT_BALANCE)


def test_reason_never_repeats_a_field_value() -> None:
    secret = "X" * 200
    raw = with_data(an_event(CUSTOMER_UPSERTED), {"id_number": secret, "full_name": secret * 10})

    reason = reason_for(raw)

    assert "XXXX" not in reason
    assert reason.startswith("data.full_name: String should have at most 1000 characters")


def test_reason_is_one_line_of_at_most_1000_characters() -> None:
    raw = with_envelope(an_event(), {"type": "x\n" * 2000})

    reason = reason_for(raw)

    assert len(reason) <= 1000
    assert "\n" not in reason


@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_nothing_but_invalid_event(raw: bytes) -> None:
    reason = outcome(raw, topic=BANK_ACCOUNTS)

    assert reason is None or 0 < len(reason) <= 1000


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@given(st.sampled_from(sorted(EVENT_TYPES)), st.dictionaries(st.text(max_size=20), JSON_VALUES, max_size=4))
def test_arbitrary_data_fields_raise_nothing_but_invalid_event(type_: str, fields: dict[str, object]) -> None:
    reason = outcome(with_data(an_event(type_), fields))

    assert reason is None or 0 < len(reason) <= 1000


@pytest.mark.parametrize("product", list(Product))
def test_product_is_an_asset_or_a_liability_never_both(product: Product) -> None:
    assert product.is_asset != product.is_liability


def test_loans_and_cards_are_liabilities() -> None:
    liabilities = {Product.CREDIT_CARD, Product.MORTGAGE, Product.CONSUMER_LOAN, Product.BUSINESS_LOAN}

    assert {product for product in Product if product.is_liability} == liabilities
