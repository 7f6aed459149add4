"""Profile tables, all in the `profile` schema."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Identity, Index, Integer, Numeric, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from runtime.db import service_metadata

SCHEMA = "profile"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


#: Balances and rates are kept exactly as the source sent them (the contract bounds them to 18
#: integer digits and 8 decimal places): unconstrained numeric, no rounding, scale preserved.
Amount = Numeric()
#: Figures in CNY are kept to the fen (0.01), as the bank reports them.
Cny = Numeric(24, 2)


class Customer(Base):
    """A golden customer: the one id the rest of the platform knows."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_merged_into", "merged_into"),
        Index("ix_customers_average_on", "average_on"),
        Index("ix_customers_tags", "tags", postgresql_using="gin"),
        Index(
            "ix_customers_name_prefix",
            func.lower(text("full_name")),
            postgresql_ops={"lower(full_name)": "text_pattern_ops"},
        ),
    )

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    merged_into: Mapped[str | None] = mapped_column(Text)
    full_name: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[str | None] = mapped_column(Text)
    birth_date: Mapped[date | None] = mapped_column(Date)
    marketing_consent: Mapped[bool | None] = mapped_column(Boolean)
    aum_cny: Mapped[Decimal] = mapped_column(Cny, server_default="0")
    aum_avg_30d_cny: Mapped[Decimal] = mapped_column(Cny, server_default="0")
    liabilities_cny: Mapped[Decimal] = mapped_column(Cny, server_default="0")
    unconverted_currencies: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    last_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The business day the 30-day average was last computed for (the daily roll-forward).
    average_on: Mapped[date | None] = mapped_column(Date)
    last_transaction_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    customer_since: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    tag_reasons: Mapped[dict[str, str]] = mapped_column(JSONB, server_default="{}")
    behaviour: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    interactions: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SourceRecord(Base):
    """One source system's record of a customer, linked to a golden customer."""

    __tablename__ = "source_records"
    __table_args__ = (Index("ix_source_records_customer", "customer_id"),)

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_ref: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text)
    provisional: Mapped[bool] = mapped_column(Boolean, server_default="true")
    full_name: Mapped[str | None] = mapped_column(Text)
    id_type: Mapped[str | None] = mapped_column(Text)
    id_number_hash: Mapped[str | None] = mapped_column(Text, index=True)
    id_number_masked: Mapped[str | None] = mapped_column(Text)
    birth_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[str | None] = mapped_column(Text)
    marketing_consent: Mapped[bool | None] = mapped_column(Boolean)
    onboarded_on: Mapped[date | None] = mapped_column(Date)
    record_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: Set by a split: this record never merges again on this identity hash.
    merge_guard_hash: Mapped[str | None] = mapped_column(Text)


class Account(Base):
    """An account of one source system with its latest versioned balance."""

    __tablename__ = "accounts"
    __table_args__ = (Index("ix_accounts_customer", "customer_id"),)

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    account_ref: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_ref: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    product: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    opened_on: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    maturity_date: Mapped[date | None] = mapped_column(Date)
    interest_rate: Mapped[Decimal | None] = mapped_column(Amount)
    balance: Mapped[Decimal | None] = mapped_column(Amount)
    balance_version: Mapped[int | None] = mapped_column(BigInteger)
    balance_as_of: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The newest business day a core-system snapshot settled; earlier-day balances no longer count.
    snapshot_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FxRate(Base):
    """The latest known rate of a currency to CNY."""

    __tablename__ = "fx_rates"

    currency: Mapped[str] = mapped_column(Text, primary_key=True)
    rate_to_cny: Mapped[Decimal] = mapped_column(Amount)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DailyBalance(Base):
    """An account's end-of-day balance for each business day it changed (carried forward between).

    The day is the business day of the balance's `as_of`, so balances that arrive late land on
    the day they belong to. A snapshot from the core system overrides the day and is final.
    """

    __tablename__ = "daily_balances"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    account_ref: Mapped[str] = mapped_column(Text, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    balance: Mapped[Decimal] = mapped_column(Amount)
    version: Mapped[int] = mapped_column(BigInteger)
    from_snapshot: Mapped[bool] = mapped_column(Boolean, server_default="false")


class Transaction(Base):
    """A posted transaction, kept for the behaviour windows and the timeline."""

    __tablename__ = "transactions"
    __table_args__ = (Index("ix_transactions_customer_posted", "customer_id", "posted_at"),)

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    transaction_ref: Mapped[str] = mapped_column(Text, primary_key=True)
    account_ref: Mapped[str] = mapped_column(Text)
    customer_ref: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(Text)
    direction: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    counterparty: Mapped[str] = mapped_column(Text)
    merchant_category: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Interaction(Base):
    """A contact with the customer: visit, call, survey, complaint or its resolution."""

    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_customer_occurred", "customer_id", "occurred_at"),)

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    interaction_ref: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_ref: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    rm_id: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class IdentityChange(Base):
    """A merge, split, refused merge or erasure, with who or what caused it and why."""

    __tablename__ = "identity_changes"
    __table_args__ = (Index("ix_identity_changes_customer", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    other_customer_id: Mapped[str | None] = mapped_column(Text)
    source_records: Mapped[list[list[str]]] = mapped_column(JSONB, server_default="[]")
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReconciliationDifference(Base):
    """A day on which the core system's end-of-day snapshot disagreed with the running balance."""

    __tablename__ = "reconciliation_differences"
    __table_args__ = (Index("ix_reconciliation_detected", "detected_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    account_ref: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    business_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(Text)
    expected: Mapped[Decimal] = mapped_column(Amount)
    found: Mapped[Decimal] = mapped_column(Amount)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SourceFreshness(Base):
    """Per source system: when its newest event arrived and how far processing trails event time."""

    __tablename__ = "source_freshness"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_lag_seconds: Mapped[float] = mapped_column(Float)
    events_total: Mapped[int] = mapped_column(BigInteger)
