"""Engagement tables, all in the `engagement` schema."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Index, Integer, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts import JsonText
from runtime.db import service_metadata

SCHEMA = "engagement"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


OPEN_STATUSES = ("open", "in_progress")
# The predicate of the one-open-task-per-action index, as literal SQL: ON CONFLICT can infer a
# partial index only from a predicate it can prove, which bound parameters are not once
# PostgreSQL switches a prepared statement to its generic plan.
OPEN_TASK = text("status IN ('open', 'in_progress')")


class Task(Base):
    """A next-best-action task for an RM (or the branch queue when `rm_id` is empty)."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index(
            "uq_tasks_one_open_per_action",
            "customer_id",
            "action",
            unique=True,
            postgresql_where=OPEN_TASK,
        ),
        Index("ix_tasks_rm_status_due", "rm_id", "status", "due_at"),
        Index("ix_tasks_branch_status_due", "branch_id", "status", "due_at"),
        Index("ix_tasks_customer", "customer_id", "action", "created_at"),
        Index("ix_tasks_campaign", "campaign_id", "status", postgresql_where=text("campaign_id IS NOT NULL")),
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
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), comment="When done or dismissed.")
    campaign_id: Mapped[str | None] = mapped_column(Text, comment="The campaign that made the task, if one did.")


class CustomerState(Base):
    """What engagement knows of a customer from profile, scoring and its own tasks."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_next_check", "next_check_at", postgresql_where=text("next_check_at IS NOT NULL")),
        Index("ix_customers_rm", "rm_id"),
    )

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tier: Mapped[str | None] = mapped_column(Text)
    tier_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    watch_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rm_id: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[str | None] = mapped_column(Text)
    marketing_consent: Mapped[bool | None] = mapped_column(Boolean)
    birth_date: Mapped[date | None] = mapped_column(Date)
    # As read, the JSON; once a batch keeps a newer one, the text it arrived as (`keep_profile`):
    # read it through `engine.profile_of`.
    profile: Mapped[dict[str, Any] | JsonText | None] = mapped_column(JSONB, comment="The newest profile.updated data.")
    profile_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    value_score: Mapped[int | None] = mapped_column(Integer)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    risk_flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    flag_reasons: Mapped[dict[str, str]] = mapped_column(JSONB, server_default="{}")
    last_contact_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="Newest contact: from profile interactions or a task done with the customer."
    )
    next_check_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When a time-based rule may next fire; the sweep looks here."
    )
    merged_into: Mapped[str | None] = mapped_column(Text)
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Manager(Base):
    """A relationship manager on the roster."""

    __tablename__ = "managers"
    __table_args__ = (Index("ix_managers_branch_grade", "branch_id", "grade"),)

    rm_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    grade: Mapped[str] = mapped_column(Text)
    branch_id: Mapped[str] = mapped_column(Text)
    capacity: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Suppression(Base):
    """A decision not to create a task, with its reason; repeats of one decision are counted."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("customer_id", "action", "code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(Text, comment="open_task, cooldown, no_consent or weekly_cap.")
    reason: Mapped[str] = mapped_column(Text, comment="The latest reason, readable by a supervisor.")
    proposed_reason: Mapped[str] = mapped_column(Text, comment="Why the rule wanted the task.")
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(Integer)


class Segment(Base):
    """An analyst-defined audience: a rule over what engagement knows of each customer."""

    __tablename__ = "segments"

    segment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="The rule as given (services/engagement/segments.py).")
    version: Mapped[int] = mapped_column(Integer, comment="Counts rule changes; a backfill runs for each.")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(Text)
    backfill_cursor: Mapped[str | None] = mapped_column(
        Text, comment="Last customer id the running backfill evaluated; null before the first batch."
    )
    backfill_total: Mapped[int] = mapped_column(Integer, server_default="0", comment="Customers to evaluate.")
    backfill_done: Mapped[int] = mapped_column(Integer, server_default="0", comment="Customers evaluated so far.")
    backfill_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    backfill_finished_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="Null while the backfill of the current version runs."
    )
    evaluated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When a customer's membership was last evaluated."
    )


class SegmentMember(Base):
    """A customer in a segment now; leaving deletes the row (the event stream keeps the history)."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_customer", "customer_id"),)

    segment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Campaign(Base):
    """A segment, an action, a window, a priority and volume caps."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_segment", "segment_id"),)

    campaign_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    segment_id: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text, comment="A catalogue action or campaign_contact.")
    script: Mapped[str | None] = mapped_column(Text, comment="What the RM says; required for campaign_contact.")
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    priority: Mapped[int] = mapped_column(Integer)
    due_days: Mapped[int] = mapped_column(Integer)
    daily_cap: Mapped[int | None] = mapped_column(Integer, comment="New tasks per day overall; null: no cap.")
    branch_daily_cap: Mapped[int | None] = mapped_column(Integer, comment="New tasks per day per branch.")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(Text)
    members_targeted_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When the members at start became targets; null until the campaign starts."
    )


class CampaignTarget(Base):
    """A customer a campaign aims at, once per campaign, and what became of it."""

    __tablename__ = "campaign_targets"
    __table_args__ = (
        Index("ix_campaign_targets_waiting", "campaign_id", postgresql_where=text("status = 'waiting'")),
        Index("ix_campaign_targets_decided", "campaign_id", "status", "decided_at"),
    )

    campaign_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, comment="waiting, created, suppressed or expired.")
    code: Mapped[str | None] = mapped_column(Text, comment="The suppression code, when suppressed.")
    reason: Mapped[str | None] = mapped_column(Text, comment="Why suppressed or expired.")
    branch_id: Mapped[str | None] = mapped_column(Text, comment="The branch whose daily cap the task counted in.")
    task_id: Mapped[str | None] = mapped_column(Text)
    targeted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
