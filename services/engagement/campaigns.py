"""Campaign volume caps and the task a campaign proposes, as pure functions.

A campaign creates at most `daily_cap` new tasks per business day overall and `branch_daily_cap`
per branch; the targets beyond that wait for the next day, highest value first (the order is the
caller's). Only tasks actually created count against a cap: a target the contact policy
suppresses leaves the room to the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.engagement.rules import Proposal, Settings

CAMPAIGN_CONTACT = "campaign_contact"


@dataclass
class Allowance:
    """What is left of a campaign's caps today."""

    daily_cap: int | None
    branch_daily_cap: int | None
    used: int = 0
    used_by_branch: Counter[str | None] = field(default_factory=Counter)

    def exhausted(self) -> bool:
        return self.daily_cap is not None and self.used >= self.daily_cap

    def allows(self, branch_id: str | None) -> bool:
        if self.exhausted():
            return False
        return self.branch_daily_cap is None or self.used_by_branch[branch_id] < self.branch_daily_cap

    def take(self, branch_id: str | None) -> None:
        self.used += 1
        self.used_by_branch[branch_id] += 1


def business_day_start(now: datetime, zone: str) -> datetime:
    """Midnight of `now`'s day in the bank's time zone: caps count from there."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time(0), tzinfo=tz)


@dataclass(frozen=True)
class CampaignAction:
    """The campaign's fields a task needs."""

    campaign_id: str
    name: str
    action: str
    script: str | None
    priority: int
    due_days: int


def campaign_settings(campaign: CampaignAction, actions: Mapping[str, Settings]) -> Settings:
    """The contact-policy settings of a campaign's action: the catalogue's own (cooldown, whether
    marketing) with the campaign's priority; `campaign_contact` is marketing with no cooldown."""
    known = actions.get(campaign.action)
    if known is None:
        return Settings(priority=campaign.priority, due_days=campaign.due_days, marketing=True)
    return known.model_copy(update={"priority": campaign.priority, "due_days": campaign.due_days})


def campaign_proposal(campaign: CampaignAction, customer_id: str, settings: Settings, now: datetime) -> Proposal:
    """The task the campaign proposes for a customer, under its `campaign_settings`."""
    said = f": {campaign.script}" if campaign.script else ""
    return Proposal(
        customer_id=customer_id,
        action=campaign.action,
        reason=f"campaign {campaign.name}{said}",
        priority=settings.priority,
        due_at=now + timedelta(days=settings.due_days),
        marketing=settings.marketing,
    )
