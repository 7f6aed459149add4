"""Scoring tables, all in the `scoring` schema."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Index, Numeric, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from runtime.db import service_metadata

SCHEMA = "scoring"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


Money = Numeric(24, 2)


class CustomerTier(Base):
    """A customer's current tier and the figures it was decided on."""

    __tablename__ = "customer_tiers"

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tier: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    measure_cny: Mapped[Decimal] = mapped_column(Money)
    aum_cny: Mapped[Decimal] = mapped_column(Money)
    aum_avg_30d_cny: Mapped[Decimal] = mapped_column(Money)
    branch_id: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TierChange(Base):
    """Every tier change, kept with its reason."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_customer", "customer_id", "effective_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(Text)
    from_tier: Mapped[str | None] = mapped_column(Text)
    to_tier: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    measure_cny: Mapped[Decimal] = mapped_column(Money)
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
