"""Scoring tables, all in the `scoring` schema."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, Numeric, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from runtime.db import service_metadata

SCHEMA = "scoring"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


Money = Numeric(24, 2)


class CustomerTier(Base):
    """A customer's current tier, the watch clock of the exit mechanism, and the profile figures
    it was decided on (kept whole, so a re-score under a new policy needs nothing else)."""

    __tablename__ = "customer_tiers"
    __table_args__ = (
        Index("ix_customer_tiers_watch", "watch_since", postgresql_where="watch_since IS NOT NULL"),
        Index("ix_customer_tiers_tier", "tier"),
    )

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tier: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    watch_since: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="Since when the measure has been below the tier's floor; null when not."
    )
    measure_cny: Mapped[Decimal] = mapped_column(Money)
    aum_cny: Mapped[Decimal] = mapped_column(Money)
    aum_avg_30d_cny: Mapped[Decimal] = mapped_column(Money)
    branch_id: Mapped[str | None] = mapped_column(Text)
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSONB, comment="The newest profile.updated data.")
    profile_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), comment="Its event time.")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CustomerScore(Base):
    """A customer's scores as last computed, and as last published (the step rule compares to those)."""

    __tablename__ = "customer_scores"

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    value_score: Mapped[int] = mapped_column(Integer)
    churn_risk: Mapped[float] = mapped_column(Float)
    risk_flags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_value_score: Mapped[int | None] = mapped_column(Integer)
    published_churn_risk: Mapped[float | None] = mapped_column(Float)
    published_risk_flags: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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


class MergedCustomer(Base):
    """A customer profile merged into another: it has no tier of its own any more, lookups
    answer with the survivor's, and a late profile event for it is ignored."""

    __tablename__ = "merged_customers"
    __table_args__ = (Index("ix_merged_customers_merged_into", "merged_into"),)

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    merged_into: Mapped[str] = mapped_column(Text)
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
