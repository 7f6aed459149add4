"""Shared field types of the event contracts: money, currencies, times, references and enums.

Each type validates the same way whether an event arrives as JSON or is built in Python, except
that JSON input is held to the wire format (amounts and times as strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema, to_json

DECIMAL_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?$"
_DECIMAL_RE: Final = re.compile(DECIMAL_PATTERN)
_NO_CONTROL_CHARS: Final = r"^[^\x00-\x1f\x7f-\x9f]*$"


class ContractModel(BaseModel):
    """Base of every event data model: immutable, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_stored(cls, stored: Any) -> Self:
        """The model of a value kept as JSON (a JSONB column holds the wire form, amounts and
        times as strings), checked as the wire is: inside pydantic-core, where the check of the
        same dict in Python mode calls Python for every amount and took twice as long for a kept
        profile (docs/benchmarks.md). `stored` is the column's value as read, or `JsonText`."""
        return cls.model_validate_json(stored if isinstance(stored, JsonText) else to_json(stored))


class JsonText(str):
    """A value already written as JSON text, such as an event's `data` as it arrived
    (`ParsedEvent.data_text`). A JSON column takes it as it is (`runtime.db`), where a dict is
    dumped, and `ContractModel.from_stored` validates it as it is: a value passed on, as consumers
    keep the profile they were sent, is then neither parsed into a dict nor written again."""

    __slots__ = ()


@dataclass(frozen=True)
class DecimalString:
    """`Annotated` marker for a Decimal carried on the wire as a JSON string such as `"1234.50"`.

    JSON numbers are refused because a float cannot hold an amount exactly. The scale is kept:
    `"100.50"` stays `Decimal("100.50")` and is written back as `"100.50"`.
    """

    gt: Decimal | None = None
    ge: Decimal | None = None
    max_integer_digits: int = 18
    max_decimal_places: int = 8

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.json_or_python_schema(
            json_schema=self._json_schema(),
            python_schema=core_schema.no_info_plain_validator_function(self._from_python),
            serialization=core_schema.plain_serializer_function_ser_schema(decimal_text, when_used="json"),
        )

    def _json_schema(self) -> CoreSchema:
        """The wire checks as one chain that runs inside pydantic-core, with no Python call per
        amount (a profile update carries dozens): a JSON string, of the decimal pattern, within
        the decimal places and whole digits, then a finite Decimal of the text (scale kept)
        within the bounds. Each step refuses with the same error as `_check`."""
        places, whole = self.max_decimal_places, self.max_integer_digits

        def step(schema: CoreSchema, kind: str, message: str, context: dict[str, Any] | None = None) -> CoreSchema:
            return core_schema.custom_error_schema(
                schema, custom_error_type=kind, custom_error_message=message, custom_error_context=context
            )

        return core_schema.chain_schema(
            [
                step(
                    core_schema.str_schema(strict=True),
                    "decimal_string_type",
                    'Input should be a decimal in a JSON string such as "1234.50", not a number',
                ),
                step(
                    core_schema.str_schema(pattern=DECIMAL_PATTERN, max_length=64),
                    "decimal_string",
                    'Input should be a decimal string such as "1234.50"',
                ),
                step(
                    core_schema.str_schema(pattern=rf"^-?[0-9]+(\.[0-9]{{1,{places}}})?$"),
                    "decimal_too_many_places",
                    f"Decimal should have at most {places} decimal places",
                    {"max_places": places},
                ),
                # Leading zeros are not digits of the value (`"007.10"` has one before the point).
                step(
                    core_schema.str_schema(pattern=rf"^-?(0*[1-9][0-9]{{0,{whole - 1}}}|0+)(\.[0-9]+)?$"),
                    "decimal_too_many_whole_digits",
                    f"Decimal should have at most {whole} digits before the point",
                    {"max_digits": whole},
                ),
                core_schema.decimal_schema(allow_inf_nan=False, gt=self.gt, ge=self.ge),
            ]
        )

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "pattern": DECIMAL_PATTERN}

    def _from_python(self, value: Any) -> Decimal:
        if isinstance(value, Decimal):
            return self._check(value)
        if isinstance(value, str):
            return self._check(_parse_decimal_text(value))
        raise PydanticCustomError("decimal_type", "Input should be a Decimal or a decimal string")

    def _check(self, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise PydanticCustomError("decimal_finite", "Input should be a finite decimal")
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # finite decimals have an int exponent
        places = max(0, -exponent)
        integer_digits = max(0, len(digits) + exponent)
        if places > self.max_decimal_places:
            raise PydanticCustomError(
                "decimal_too_many_places",
                "Decimal should have at most {max_places} decimal places",
                {"max_places": self.max_decimal_places},
            )
        if integer_digits > self.max_integer_digits:
            raise PydanticCustomError(
                "decimal_too_many_whole_digits",
                "Decimal should have at most {max_digits} digits before the point",
                {"max_digits": self.max_integer_digits},
            )
        if self.gt is not None and not value > self.gt:
            raise PydanticCustomError("greater_than", "Input should be greater than {gt}", {"gt": str(self.gt)})
        if self.ge is not None and not value >= self.ge:
            raise PydanticCustomError(
                "greater_than_equal", "Input should be greater than or equal to {ge}", {"ge": str(self.ge)}
            )
        return value


def decimal_text(value: Decimal) -> str:
    """The wire form of a decimal: plain notation, scale kept (`Decimal("1E+2")` -> `"100"`)."""
    return format(value, "f")


def _parse_decimal_text(text: str) -> Decimal:
    if len(text) > 64 or not _DECIMAL_RE.match(text):
        raise PydanticCustomError("decimal_string", 'Input should be a decimal string such as "1234.50"')
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise PydanticCustomError("decimal_string", 'Input should be a decimal string such as "1234.50"') from None


def _string_on_the_wire(value: Any, info: ValidationInfo) -> Any:
    """Refuse JSON numbers where the contract wants an RFC 3339 / ISO 8601 string."""
    if info.mode == "json" and not isinstance(value, str):
        raise PydanticCustomError("iso_string_type", "Input should be an ISO 8601 string")
    return value


Money = Annotated[Decimal, DecimalString()]
PositiveMoney = Annotated[Decimal, DecimalString(gt=Decimal(0))]
Rate = Annotated[Decimal, DecimalString(gt=Decimal(0))]
NonNegativeRate = Annotated[Decimal, DecimalString(ge=Decimal(0))]

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_string_on_the_wire)]
CalendarDate = Annotated[date, BeforeValidator(_string_on_the_wire)]

Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=_NO_CONTROL_CHARS)]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000, pattern=_NO_CONTROL_CHARS)
]
Note = Annotated[str, StringConstraints(max_length=4000)]
EventId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256, pattern=_NO_CONTROL_CHARS)
]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class Product(StrEnum):
    """A bank product; the asset side counts toward AUM, the liability side is money owed."""

    CURRENT = "current"
    TIME_DEPOSIT = "time_deposit"
    WEALTH_PRODUCT = "wealth_product"
    FUND = "fund"
    INSURANCE = "insurance"
    PRECIOUS_METAL = "precious_metal"
    CREDIT_CARD = "credit_card"
    MORTGAGE = "mortgage"
    CONSUMER_LOAN = "consumer_loan"
    BUSINESS_LOAN = "business_loan"

    @property
    def is_asset(self) -> bool:
        return self in ASSET_PRODUCTS

    @property
    def is_liability(self) -> bool:
        return self in LIABILITY_PRODUCTS


ASSET_PRODUCTS: Final = frozenset(
    {
        Product.CURRENT,
        Product.TIME_DEPOSIT,
        Product.WEALTH_PRODUCT,
        Product.FUND,
        Product.INSURANCE,
        Product.PRECIOUS_METAL,
    }
)
LIABILITY_PRODUCTS: Final = frozenset(set(Product) - ASSET_PRODUCTS)


class Direction(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


class Channel(StrEnum):
    BRANCH = "branch"
    ATM = "atm"
    MOBILE = "mobile"
    ONLINE = "online"
    POS = "pos"
    PHONE = "phone"


class Counterparty(StrEnum):
    """Whether the other side of a transaction banks with us (`internal`) or elsewhere."""

    INTERNAL = "internal"
    EXTERNAL = "external"


class InteractionKind(StrEnum):
    COMPLAINT = "complaint"
    SURVEY = "survey"
    VISIT = "visit"
    CALL = "call"
    COMPLAINT_RESOLVED = "complaint_resolved"


class IdType(StrEnum):
    """The kind of identity document; `id_type` + `id_number` is what identity matching uses."""

    RESIDENT_ID = "resident_id"
    PASSPORT = "passport"
    HK_MACAU_PERMIT = "hk_macau_permit"
    TAIWAN_PERMIT = "taiwan_permit"
    FOREIGN_RESIDENT_PERMIT = "foreign_resident_permit"
    BUSINESS_LICENSE = "business_license"
    OTHER = "other"


class TaskStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DISMISSED = "dismissed"
