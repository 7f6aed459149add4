"""Events published by the bank's source systems (core deposits, cards, loans, wealth, CRM).

A `customer_ref` is the source system's own customer id: unique only within the event's
`source`, which is why the golden `customer_id` exists.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StrictBool

from contracts.types import (
    CalendarDate,
    Channel,
    ContractModel,
    Counterparty,
    Currency,
    Direction,
    IdType,
    InteractionKind,
    Money,
    NonNegativeRate,
    Note,
    PositiveMoney,
    Product,
    Rate,
    Ref,
    Text,
    Timestamp,
)

_CUSTOMER_REF = "The source system's customer id; unique within the event's source."
_ACCOUNT_REF = "The source system's account id; unique within the event's source."


class CustomerUpserted(ContractModel):
    """Emitted by a source system when it creates a customer record or changes one.

    Each event carries the whole record as the source knows it now, not a diff.
    """

    EVENT_TYPE: ClassVar[str] = "bank.customer.upserted.v1"

    customer_ref: Ref = Field(description=_CUSTOMER_REF)
    full_name: Text = Field(description="The customer's full legal name.")
    id_type: IdType = Field(description="Kind of identity document.")
    id_number: Ref = Field(description="Identity document number, as printed on the document.")
    birth_date: CalendarDate | None = Field(default=None, description="Date of birth.")
    gender: Ref | None = Field(default=None, description="Gender as recorded by the source system.")
    phone: Ref | None = Field(default=None, description="Mobile phone number; never used alone to match people.")
    email: Text | None = Field(default=None, description="E-mail address.")
    branch_id: Ref = Field(description="The customer's home branch.")
    marketing_consent: StrictBool = Field(
        description="Whether the customer currently agrees to marketing contact; the newest statement wins."
    )
    onboarded_on: CalendarDate | None = Field(default=None, description="When the customer joined this source.")


class AccountOpened(ContractModel):
    """Emitted when a customer opens an account (a deposit, product holding, card or loan)."""

    EVENT_TYPE: ClassVar[str] = "bank.account.opened.v1"

    account_ref: Ref = Field(description=_ACCOUNT_REF)
    customer_ref: Ref = Field(description=_CUSTOMER_REF)
    product: Product = Field(description="The product; decides whether the balance is an asset or a liability.")
    currency: Currency = Field(description="ISO 4217 currency of the account.")
    opened_on: CalendarDate = Field(description="Business date the account was opened.")
    maturity_date: CalendarDate | None = Field(
        default=None, description="When a time deposit or wealth product matures."
    )
    interest_rate: NonNegativeRate | None = Field(
        default=None, description="Annual interest rate as a decimal string, e.g. `0.0175` for 1.75%."
    )


class AccountBalance(ContractModel):
    """Emitted whenever an account's balance changes, with the balance after the change.

    Balances are absolute, so the event is idempotent; an older `version` arriving late is ignored.
    """

    EVENT_TYPE: ClassVar[str] = "bank.account.balance.v1"

    account_ref: Ref = Field(description=_ACCOUNT_REF)
    customer_ref: Ref = Field(description=_CUSTOMER_REF)
    balance: Money = Field(
        description="Balance after the change, in the account currency; negative when overdrawn or owed."
    )
    currency: Currency = Field(description="ISO 4217 currency of the balance.")
    as_of: Timestamp = Field(description="When the balance took effect in the source system.")
    version: Annotated[int, Field(ge=0, strict=True)] = Field(
        description="Per-account version, strictly increasing with each balance change."
    )


class AccountClosed(ContractModel):
    """Emitted when an account is closed; it then no longer counts toward AUM or liabilities."""

    EVENT_TYPE: ClassVar[str] = "bank.account.closed.v1"

    account_ref: Ref = Field(description=_ACCOUNT_REF)
    customer_ref: Ref = Field(description=_CUSTOMER_REF)
    closed_on: CalendarDate = Field(description="Business date the account was closed.")


class AccountSnapshot(ContractModel):
    """Emitted by the core system at end of day for every account: the authoritative balance.

    Running balances that differ are corrected to the snapshot and reported.
    """

    EVENT_TYPE: ClassVar[str] = "bank.account.snapshot.v1"

    business_date: CalendarDate = Field(description="The business day this end-of-day balance closes.")
    account_ref: Ref = Field(description=_ACCOUNT_REF)
    customer_ref: Ref = Field(description=_CUSTOMER_REF)
    balance: Money = Field(description="End-of-day balance in the account currency; may be negative.")
    currency: Currency = Field(description="ISO 4217 currency of the balance.")


class TransactionPosted(ContractModel):
    """Emitted when a transaction is posted to an account.

    The resulting balance comes separately as `bank.account.balance.v1`.
    """

    EVENT_TYPE: ClassVar[str] = "bank.transaction.posted.v1"

    transaction_ref: Ref = Field(description="The source system's transaction id; unique within the source.")
    account_ref: Ref = Field(description=_ACCOUNT_REF)
    customer_ref: Ref = Field(description=_CUSTOMER_REF)
    amount: PositiveMoney = Field(description="Amount in the transaction currency; always > 0, see `direction`.")
    direction: Direction = Field(description="`credit` adds money to the account, `debit` takes it away.")
    currency: Currency = Field(description="ISO 4217 currency of the amount.")
    channel: Channel = Field(description="Where the customer made the transaction.")
    counterparty: Counterparty = Field(description="Whether the other side banks with us or elsewhere.")
    merchant_category: Ref | None = Field(default=None, description="Merchant category code for card payments.")
    posted_at: Timestamp = Field(description="When the transaction was posted.")


class InteractionRecorded(ContractModel):
    """Emitted by branch, call-centre and CRM systems when a contact with the customer is recorded."""

    EVENT_TYPE: ClassVar[str] = "bank.interaction.recorded.v1"

    interaction_ref: Ref = Field(description="The source system's interaction id; unique within the source.")
    customer_ref: Ref = Field(description=_CUSTOMER_REF)
    kind: InteractionKind = Field(description="What kind of contact it was.")
    occurred_at: Timestamp = Field(description="When the contact happened.")
    satisfaction: Annotated[int, Field(ge=1, le=5, strict=True)] | None = Field(
        default=None, description="Satisfaction the customer gave, 1 (worst) to 5 (best)."
    )
    rm_id: Ref | None = Field(default=None, description="The relationship manager involved, if any.")
    note: Note | None = Field(default=None, description="Free-text note; may hold personal data.")


class FxRate(ContractModel):
    """Emitted by the treasury system when an exchange rate against CNY changes."""

    EVENT_TYPE: ClassVar[str] = "bank.fx.rate.v1"

    currency: Currency = Field(description="ISO 4217 currency the rate converts from.")
    rate_to_cny: Rate = Field(description="CNY per one unit of `currency`; > 0.")
    as_of: Timestamp = Field(description="When the rate took effect.")
