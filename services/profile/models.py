"""Profile tables, all in the `profile` schema."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Index, Numeric, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
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


class SourceRecord(Base):
    """One source system's record of a customer, linked to a golden customer."""

    __tablename__ = "source_records"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_ref: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text, index=True)
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
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FxRate(Base):
    """The latest known rate of a currency to CNY."""

    __tablename__ = "fx_rates"

    currency: Mapped[str] = mapped_column(Text, primary_key=True)
    rate_to_cny: Mapped[Decimal] = mapped_column(Amount)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DailyAum(Base):
    """End-of-day AUM of a customer for each day it changed (carried forward between)."""

    __tablename__ = "aum_daily"

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    aum_cny: Mapped[Decimal] = mapped_column(Cny)
