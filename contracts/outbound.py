"""Events published by the platform about golden customers, keyed by `customer_id`."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StrictBool

from contracts.types import (
    CalendarDate,
    Channel,
    ContractModel,
    Currency,
    Money,
    NonNegativeRate,
    Product,
    Ref,
    TaskStatus,
    Text,
    Timestamp,
)

_CUSTOMER_ID = "The golden customer id assigned by the platform."
_AccountCount = Annotated[int, Field(ge=0, strict=True)]


class AccountSummary(ContractModel):
    """One account of the customer as the profile holds it, with its balance in CNY."""

    source: Ref = Field(description="The source system that holds the account.")
    account_ref: Ref = Field(description="The account id within that source system.")
    product: Product = Field(description="The product of the account.")
    status: Literal["open", "closed"] = Field(description="Whether the account is open or closed.")
    currency: Currency | None = Field(default=None, description="Currency of the balance.")
    balance: Money | None = Field(
        default=None, description="Latest balance in the account's currency; on liability products the amount owed."
    )
    balance_cny: Money | None = Field(
        default=None, description="The balance in CNY at the latest rate; null while no rate is known."
    )
    opened_on: CalendarDate | None = Field(default=None, description="Day the account was opened.")
    closed_on: CalendarDate | None = Field(default=None, description="Day the account was closed.")
    maturity_date: CalendarDate | None = Field(default=None, description="Maturity of a deposit, product or loan.")


class TransactionWindow(ContractModel):
    """Transaction behaviour over the last `days` days, amounts in CNY."""

    days: _AccountCount = Field(description="Length of the window in days, such as 30 or 90.")
    count: _AccountCount = Field(description="Number of posted transactions.")
    credit_count: _AccountCount = Field(description="Number of credits (money in).")
    debit_count: _AccountCount = Field(description="Number of debits (money out).")
    credit_cny: Money = Field(description="Sum of credits in CNY.")
    debit_cny: Money = Field(description="Sum of debits in CNY.")
    external_outflow_cny: Money = Field(description="Sum of debits to external counterparties (other banks) in CNY.")
    by_channel: dict[Channel, _AccountCount] = Field(description="Number of transactions per channel.")
    branch_share: NonNegativeRate = Field(description="Share of transactions made at the counter (`branch`), 0 to 1.")


class Behaviour(ContractModel):
    """How the customer has used the accounts lately."""

    last_30d: TransactionWindow = Field(description="The last 30 days.")
    last_90d: TransactionWindow = Field(description="The last 90 days.")
    last_transaction_at: Timestamp | None = Field(default=None, description="When the newest transaction was posted.")


class Interactions(ContractModel):
    """The customer's contacts with the bank."""

    last_contact_at: Timestamp | None = Field(default=None, description="The newest visit, call or survey.")
    open_complaints: _AccountCount = Field(description="Complaints recorded and not yet resolved.")
    last_complaint_at: Timestamp | None = Field(default=None, description="When the newest complaint was recorded.")
    last_satisfaction: Annotated[int, Field(ge=1, le=5, strict=True)] | None = Field(
        default=None, description="The newest satisfaction score, 1 to 5."
    )


class ProfileUpdated(ContractModel):
    """Emitted by profile whenever a customer's unified view changes (balances, identity, accounts...)."""

    EVENT_TYPE: ClassVar[str] = "c360.profile.updated.v1"

    customer_id: Ref = Field(description=_CUSTOMER_ID)
    aum_cny: Money = Field(description="Assets under management now: asset-side balances in CNY.")
    aum_avg_30d_cny: Money = Field(description="Average daily AUM over the last 30 days, in CNY; tiers use it.")
    liabilities_cny: Money = Field(description="Liability-side balances (money owed) in CNY.")
    product_holdings: dict[Product, _AccountCount] = Field(description="Number of open accounts per product.")
    tags: list[Ref] = Field(description="Descriptive tags of the customer, such as `payroll`.")
    changed: list[Ref] = Field(
        description="What changed to cause this event, such as `balances`, `identity` or `accounts`."
    )
    branch_id: Ref | None = Field(default=None, description="The customer's home branch.")
    birth_date: CalendarDate | None = Field(default=None, description="Date of birth, for birthday greetings.")
    marketing_consent: StrictBool | None = Field(
        default=None, description="The newest marketing consent from any source; null when unknown."
    )
    unconverted_currencies: list[Currency] | None = Field(
        default=None, description="Currencies held for which no CNY rate is known yet, so left out of the totals."
    )
    accounts: list[AccountSummary] | None = Field(
        default=None, description="The customer's open and closed accounts with balances in CNY."
    )
    behaviour: Behaviour | None = Field(default=None, description="Transaction behaviour over 30 and 90 days.")
    interactions: Interactions | None = Field(default=None, description="Contacts, complaints and satisfaction.")
    customer_since: CalendarDate | None = Field(
        default=None,
        description="When the relationship began: the earliest onboarding or account opening.",
    )
    tag_reasons: dict[Ref, Text] | None = Field(
        default=None, description="For each tag, the rule that set it, readable by an RM."
    )


class CustomerMerged(ContractModel):
    """Emitted by profile when a new record links two golden customers and one absorbs the other.

    The merged id redirects to the surviving one for ever.
    """

    EVENT_TYPE: ClassVar[str] = "c360.customer.merged.v1"

    surviving_customer_id: Ref = Field(description="The golden customer id that remains.")
    merged_customer_id: Ref = Field(description="The golden customer id absorbed into the survivor.")
    reason: Text = Field(description="Why the two were merged, such as the matching identity document.")


class SourceRecord(ContractModel):
    """One source system's customer record, named by the source and its own customer_ref."""

    source: Ref = Field(description="The source system, as in the `source` of its events.")
    customer_ref: Ref = Field(description="The customer id within that source system.")


class CustomerSplit(ContractModel):
    """Emitted by profile when an admin undoes a wrong merge by moving source records to a new customer."""

    EVENT_TYPE: ClassVar[str] = "c360.customer.split.v1"

    customer_id: Ref = Field(description="The golden customer the records were split from.")
    new_customer_id: Ref = Field(description="The new golden customer that now owns the records.")
    source_records: list[SourceRecord] = Field(
        min_length=1, description="The source records moved, with their accounts and history."
    )
    reason: Text = Field(description="Why the records were split off, as given by the admin.")


class CustomerErased(ContractModel):
    """Emitted by profile when a customer exercises the right to deletion.

    Every service erases that customer's personal data and keeps only anonymous figures.
    """

    EVENT_TYPE: ClassVar[str] = "c360.customer.erased.v1"

    customer_id: Ref = Field(description=_CUSTOMER_ID)
    erased_at: Timestamp = Field(description="When the erasure was requested.")


class TierChanged(ContractModel):
    """Emitted by scoring when a customer's value tier is first assigned or changes, and when a
    customer goes on watch or comes off it.

    Upgrades are immediate; downgrades come only after the grace period on watch. Going on watch
    (measure below the floor of the tier held) is published with `from_tier` equal to `to_tier`
    and `watch_since` set; climbing back during the grace period with `from_tier` equal to
    `to_tier` and `watch_since` null.
    """

    EVENT_TYPE: ClassVar[str] = "c360.tier.changed.v1"

    customer_id: Ref = Field(description=_CUSTOMER_ID)
    from_tier: Ref | None = Field(description="The previous tier; null when the tier is first assigned.")
    to_tier: Ref = Field(description="The new tier; tier names come from the tier policy, such as `vip`.")
    reason: Text = Field(description="Why the tier changed, readable by an RM.")
    effective_at: Timestamp = Field(description="When the new tier took effect.")
    measure_cny: Money | None = Field(
        default=None, description="The measure the decision was made on (30-day average AUM in CNY)."
    )
    watch_since: Timestamp | None = Field(
        default=None, description="Since when the customer has been below the tier floor, if on watch."
    )


class ScoreReason(ContractModel):
    """One factor behind a score, with its weight and an explanation for an RM."""

    score: Literal["value", "churn", "flag"] = Field(
        description="Which score the factor contributes to; `flag` explains a risk flag (contribution 0)."
    )
    factor: Ref = Field(
        description="Machine name of the factor, such as `aum` or `outflow_30d`; for a flag, the flag's name."
    )
    contribution: Annotated[float, Field(allow_inf_nan=False)] = Field(
        description="How much the factor added to the score (negative when it lowered it)."
    )
    text: Text = Field(description="The reason in words an RM can read to the customer's situation.")


class ScoreUpdated(ContractModel):
    """Emitted by scoring when a customer's value score, churn risk or risk flags are recomputed and differ."""

    EVENT_TYPE: ClassVar[str] = "c360.score.updated.v1"

    customer_id: Ref = Field(description=_CUSTOMER_ID)
    value_score: Annotated[int, Field(ge=0, le=100, strict=True)] = Field(
        description="Value of the customer to the bank, 0 (lowest) to 100."
    )
    churn_risk: Annotated[float, Field(ge=0, le=1)] = Field(description="Likelihood the customer is leaving, 0 to 1.")
    risk_flags: list[Ref] = Field(description="Risks to act on, such as `credit_card_overdrawn`.")
    reasons: list[ScoreReason] = Field(description="The factors that produced the scores.")


class TaskEvent(ContractModel):
    """Emitted by engagement as `c360.task.created.v1` when a next-best-action task is created,
    and as `c360.task.updated.v1` when it is assigned, moved along or closed."""

    EVENT_TYPES: ClassVar[tuple[str, ...]] = ("c360.task.created.v1", "c360.task.updated.v1")

    task_id: Ref = Field(description="The task's id.")
    customer_id: Ref = Field(description=_CUSTOMER_ID)
    action: Ref = Field(description="The next best action, such as `retention_call` or `birthday_greeting`.")
    reason: Text = Field(description="Why the task exists, readable by an RM.")
    priority: Annotated[int, Field(ge=1, le=100, strict=True)] = Field(description="1 to 100; higher is more urgent.")
    due_at: Timestamp = Field(description="When the task should be done.")
    rm_id: Ref | None = Field(description="The assigned relationship manager; null when in the branch queue.")
    status: TaskStatus = Field(description="Where the task stands.")
    outcome: Text | None = Field(default=None, description="What came of it, once done or dismissed.")
    branch_id: Ref | None = Field(default=None, description="The branch whose queue holds the task.")


class SegmentMembership(ContractModel):
    """Emitted by engagement when a customer enters or leaves an analyst-defined segment."""

    EVENT_TYPE: ClassVar[str] = "c360.segment.membership.v1"

    segment_id: Ref = Field(description="The segment's id.")
    customer_id: Ref = Field(description=_CUSTOMER_ID)
    entered: StrictBool = Field(description="True when the customer entered the segment, false when they left.")
    at: Timestamp = Field(description="When membership changed.")


class AuditRecorded(ContractModel):
    """Emitted by the gateway for every read of a customer's data and every admin action: who,
    in which role, which customer, through which route, with what outcome."""

    EVENT_TYPE: ClassVar[str] = "c360.audit.recorded.v1"

    subject: Ref = Field(description="Who asked: the token's `sub`.")
    role: Ref = Field(description="The role the token carried, such as `rm` or `admin`.")
    customer_id: Ref | None = Field(default=None, description="The customer read or changed; null when none was found.")
    route: Text = Field(description="The route template, such as `/v1/customers/{customer_id}`.")
    method: Ref = Field(description="The HTTP method.")
    status: Annotated[int, Field(ge=100, le=599, strict=True)] = Field(description="The HTTP status answered.")
    at: Timestamp = Field(description="When it happened.")
