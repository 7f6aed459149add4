"""Next-best-action rules as pure functions of plain values and the time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TaskProposal:
    """A task a rule wants to create, before the contact policy has its say."""

    customer_id: str
    action: str
    reason: str
    priority: int
    due_at: datetime
    marketing: bool


@dataclass(frozen=True)
class WelcomeRule:
    """`welcome`: the customer entered a tier that has a named RM; introduce the RM."""

    premium_tiers: Sequence[str]
    due_in: timedelta = timedelta(days=3)
    priority: int = 70

    def propose(self, customer_id: str, from_tier: str | None, to_tier: str, now: datetime) -> TaskProposal | None:
        if to_tier not in self.premium_tiers or (from_tier in self.premium_tiers):
            return None
        origin = f"from {from_tier}" if from_tier else "on first assessment"
        return TaskProposal(
            customer_id=customer_id,
            action="welcome",
            reason=f"entered {to_tier} {origin}: welcome the customer and introduce their relationship manager",
            priority=self.priority,
            due_at=now + self.due_in,
            marketing=False,
        )
