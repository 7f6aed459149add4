"""Gateway tables, in the `gateway` schema: the audit log of customer reads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from runtime.db import service_metadata

SCHEMA = "gateway"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class AuditRecord(Base):
    """Who read which customer, through which route, when, and with what outcome."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_customer_at", "customer_id", "at"),
        Index("ix_audit_at", "at"),
        Index("ix_audit_subject_at", "subject", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    subject: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str | None] = mapped_column(Text)
    route: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text, server_default="GET")
    status: Mapped[int] = mapped_column(Integer)
