"""The shared field types: money as decimal strings, currencies, times and references."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from contracts import Currency, Money, PositiveMoney, Ref, Timestamp
from contracts.types import NonNegativeRate

MONEY = TypeAdapter(Money)


def json_money_error(raw: str) -> str:
    with pytest.raises(ValidationError) as caught:
        MONEY.validate_json(raw)
    return caught.value.errors()[0]["msg"]


def python_money_error(value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        MONEY.validate_python(value)
    return caught.value.errors()[0]["msg"]


@pytest.mark.parametrize("text", ["1234.50", "-0.01", "0", "007.10", "123456789012345678.12345678"])
def test_money_from_a_json_string_keeps_the_digits_and_scale(text: str) -> None:
    value = MONEY.validate_json(f'"{text}"')

    assert value == Decimal(text)
    assert value.as_tuple().exponent == Decimal(text).as_tuple().exponent


@pytest.mark.parametrize("raw", ["1234.5", "1234", "1e3", "true", "null"])
def test_money_as_a_json_non_string_is_rejected(raw: str) -> None:
    assert json_money_error(raw).startswith("Input should be a decimal in a JSON string")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.123456789", "Decimal should have at most 8 decimal places"),
        ("1.000000000", "Decimal should have at most 8 decimal places"),
        ("1234567890123456789", "Decimal should have at most 18 digits before the point"),
        ("NaN", 'Input should be a decimal string such as "1234.50"'),
        ("-Infinity", 'Input should be a decimal string such as "1234.50"'),
        ("1E+3", 'Input should be a decimal string such as "1234.50"'),
        ("12.", 'Input should be a decimal string such as "1234.50"'),
        (".5", 'Input should be a decimal string such as "1234.50"'),
    ],
)
def test_money_string_out_of_contract_is_rejected_with_a_clear_message(text: str, message: str) -> None:
    assert json_money_error(f'"{text}"') == message


@pytest.mark.parametrize("value", [Decimal("12.30"), "12.30"])
def test_money_in_python_accepts_a_decimal_or_a_decimal_string(value: Decimal | str) -> None:
    assert MONEY.validate_python(value) == Decimal("12.30")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (12.3, "Input should be a Decimal or a decimal string"),
        (12, "Input should be a Decimal or a decimal string"),
        (Decimal("NaN"), "Input should be a finite decimal"),
        (Decimal("Infinity"), "Input should be a finite decimal"),
    ],
)
def test_money_in_python_rejects_floats_ints_and_non_finite_decimals(value: object, message: str) -> None:
    assert python_money_error(value) == message


@pytest.mark.parametrize(
    ("value", "wire"),
    [(Decimal("1234.50"), b'"1234.50"'), (Decimal("1E+2"), b'"100"'), (Decimal("1E-8"), b'"0.00000001"')],
)
def test_money_is_written_as_a_plain_decimal_string(value: Decimal, wire: bytes) -> None:
    assert MONEY.dump_json(value) == wire
    assert MONEY.dump_python(value) == value


def test_money_json_schema_is_a_decimal_string() -> None:
    assert MONEY.json_schema() == {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}


def _outcome(validate: Callable[[], Decimal]) -> tuple[str, object]:
    try:
        value = validate()
    except ValidationError as exc:
        error = exc.errors()[0]
        return ("refused", (error["type"], error["msg"]))
    return ("accepted", (value, value.as_tuple().exponent))


DECIMAL_TEXT = st.one_of(
    st.from_regex(r"\A-?[0-9]{1,22}(\.[0-9]{1,10})?\Z"),
    st.from_regex(r"\A-?0{0,5}[0-9]{0,20}(\.[0-9]{0,10})?\Z"),
    st.text(alphabet="-0123456789.eE+ NaInfity", max_size=30),
)


@given(text=DECIMAL_TEXT, bound=st.sampled_from([Money, PositiveMoney, NonNegativeRate]))
def test_money_from_json_is_checked_exactly_as_a_decimal_string_from_python(text: str, bound: object) -> None:
    """Amounts on the wire are checked inside pydantic-core (no Python call per amount); the
    outcome, value, scale and error, is the same as the Python check of the same text."""
    adapter: TypeAdapter[Decimal] = TypeAdapter(bound)
    from_json = _outcome(lambda: adapter.validate_json(json.dumps(text)))
    from_python = _outcome(lambda: adapter.validate_python(text))

    assert from_json == from_python


@pytest.mark.parametrize("text", ["0", "0.00", "-1"])
def test_positive_money_rejects_zero_and_below(text: str) -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        TypeAdapter(PositiveMoney).validate_json(f'"{text}"')


def test_interest_rate_may_be_zero_but_not_negative() -> None:
    rate = TypeAdapter(NonNegativeRate)

    assert rate.validate_json('"0"') == Decimal(0)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        rate.validate_json('"-0.01"')


@pytest.mark.parametrize("code", ["cny", "CN", "CNYY", "C1Y", ""])
def test_currency_must_be_three_uppercase_letters(code: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Currency).validate_python(code)


@pytest.mark.parametrize("text", ["", "   ", "a\nb", "tab\there", "x" * 129])
def test_reference_must_be_one_line_of_1_to_128_characters(text: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Ref).validate_python(text)


def test_reference_is_stripped() -> None:
    assert TypeAdapter(Ref).validate_python("  CUST-1 ") == "CUST-1"


@pytest.mark.parametrize(
    "raw", ['"2026-11-22T09:30:00+08:00"', '"2026-11-22T01:30:00Z"', '"2026-11-22T09:30:00.123+08:00"']
)
def test_timestamp_accepts_rfc3339_with_offset(raw: str) -> None:
    value = TypeAdapter(Timestamp).validate_json(raw)

    assert value.tzinfo is not None


@pytest.mark.parametrize("raw", ['"2026-11-22T09:30:00"', "1795000000", '"2026-11-22"'])
def test_timestamp_without_offset_or_as_a_number_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Timestamp).validate_json(raw)


def test_naive_python_datetime_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone info"):
        TypeAdapter(Timestamp).validate_python(datetime(2026, 11, 22, 9, 30))
