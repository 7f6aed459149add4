"""Engagement tables, all in the `engagement` schema."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from runtime.db import service_metadata

SCHEMA = "engagement"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


OPEN_STATUSES = ("open", "in_progress")


class Task(Base):
    """A next-best-action task for an RM (or the branch queue when `rm_id` is empty)."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index(
            "uq_tasks_one_open_per_action",
            "customer_id",
            "action",
            unique=True,
            postgresql_where=text("status IN ('open', 'in_progress')"),
        ),
        Index("ix_tasks_rm_status_due", "rm_id", "status", "due_at"),
        Index("ix_tasks_customer", "customer_id"),
    )

    task_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rm_id: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="open")
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CustomerState(Base):
    """What engagement knows of a customer from the events it consumes."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tier: Mapped[str | None] = mapped_column(Text)
    tier_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rm_id: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
