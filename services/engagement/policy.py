"""The contact policy and RM assignment, as pure functions.

`arbitrate` turns a customer's proposals into the tasks to create and the decisions not to, each
with its reason: never two open tasks of one action, a cooldown after a task of the action
closed, marketing only with consent, and at most `weekly_cap` new tasks in a rolling week
(highest priority first). `choose_manager` picks the RM for a customer's tier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal

from services.engagement.rules import Proposal, Settings

SuppressionCode = Literal["open_task", "cooldown", "no_consent", "weekly_cap"]


@dataclass(frozen=True)
class TaskHistory:
    """What the contact policy needs to know of a customer's tasks."""

    open_actions: frozenset[str] = frozenset()
    last_closed: Mapping[str, datetime] = field(default_factory=dict)
    created_last_week: int = 0


@dataclass(frozen=True)
class Suppressed:
    proposal: Proposal
    code: SuppressionCode
    reason: str


@dataclass(frozen=True)
class Arbitration:
    create: tuple[Proposal, ...]
    suppressed: tuple[Suppressed, ...]


def arbitrate(
    proposals: Sequence[Proposal],
    history: TaskHistory,
    actions: Mapping[str, Settings],
    *,
    consent: bool | None,
    weekly_cap: int,
    now: datetime,
) -> Arbitration:
    allowed: list[Proposal] = []
    suppressed: list[Suppressed] = []
    for proposal in sorted(proposals, key=lambda p: (-p.priority, p.action)):
        action = proposal.action
        cooldown = timedelta(days=actions[action].cooldown_days)
        closed = history.last_closed.get(action)
        if action in history.open_actions:
            suppressed.append(Suppressed(proposal, "open_task", f"an open {action} task already exists"))
        elif closed is not None and cooldown and now < closed + cooldown:
            until = closed + cooldown
            suppressed.append(
                Suppressed(
                    proposal,
                    "cooldown",
                    f"a {action} task closed on {closed:%Y-%m-%d}; "
                    f"cooldown of {cooldown.days} days until {until:%Y-%m-%d}",
                )
            )
        elif proposal.marketing and consent is not True:
            said = "withheld" if consent is False else "not known"
            suppressed.append(Suppressed(proposal, "no_consent", f"marketing action and marketing consent is {said}"))
        else:
            allowed.append(proposal)
    room = max(0, weekly_cap - history.created_last_week)
    for proposal in allowed[room:]:
        suppressed.append(
            Suppressed(
                proposal,
                "weekly_cap",
                f"weekly cap of {weekly_cap} new tasks reached ({history.created_last_week} in the last 7 days); "
                "higher-priority actions went first",
            )
        )
    return Arbitration(tuple(allowed[:room]), tuple(suppressed))


@dataclass(frozen=True)
class Manager:
    rm_id: str
    grade: str
    branch_id: str
    capacity: int
    active: bool
    load: int = 0  # customers assigned now


def keeps(current: Manager | None, grade: str | None) -> bool:
    """Whether a customer keeps `current`: the assignment is sticky while the grade fits and the RM is active."""
    return current is not None and grade is not None and current.active and current.grade == grade


def choose_manager(
    current: Manager | None, grade: str | None, branch_id: str | None, roster: Sequence[Manager]
) -> Manager | None:
    """The RM a customer should have: None when the tier needs none or nobody suitable has room
    (the customer then waits in the branch queue)."""
    if grade is None:
        return None
    if keeps(current, grade):
        return current
    suitable = [
        m
        for m in roster
        if m.active and m.grade == grade and m.branch_id == branch_id and m.capacity > 0 and m.load < m.capacity
    ]
    if not suitable:
        return None
    return min(suitable, key=lambda m: (Fraction(m.load, m.capacity), m.load, m.rm_id))
