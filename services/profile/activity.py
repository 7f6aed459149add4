"""Pure activity logic: transaction windows, the interaction summary, and every tag rule.

No I/O here. Tags are descriptive facts an RM can check: each rule is a small function in
`TAG_RULES` that answers the reason in words, or None when the tag does not apply.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from contracts import (
    Behaviour,
    Channel,
    Counterparty,
    Direction,
    InteractionKind,
    Interactions,
    Product,
    TransactionWindow,
)
from services.profile.domain import CENT, ZERO, AccountState

SHARE = Decimal("0.0001")
CONTACTS = frozenset({InteractionKind.VISIT, InteractionKind.CALL, InteractionKind.SURVEY})
ELECTRONIC = frozenset({Channel.MOBILE, Channel.ONLINE})
CREDIT_PRODUCTS = frozenset({Product.CREDIT_CARD, Product.CONSUMER_LOAN, Product.MORTGAGE, Product.BUSINESS_LOAN})
WEALTH_PRODUCTS = frozenset({Product.WEALTH_PRODUCT, Product.FUND, Product.INSURANCE, Product.PRECIOUS_METAL})

#: Tag thresholds, named so the rules below read as the bank states them.
PAYROLL_MIN_CNY = Decimal("3000")
PAYROLL_MONTHS = 3
PAYROLL_TOLERANCE = Decimal("0.25")
COUNTER_HEAVY_MIN_TRANSACTIONS = 5
COUNTER_HEAVY_SHARE = Decimal("0.5")
DORMANT_DAYS = 90


@dataclass(frozen=True)
class TransactionFact:
    posted_at: datetime
    direction: Direction
    channel: Channel
    counterparty: Counterparty
    #: None when the currency has no rate yet: counted in the counts, not in the sums.
    amount_cny: Decimal | None


@dataclass(frozen=True)
class InteractionFact:
    kind: InteractionKind
    occurred_at: datetime
    satisfaction: int | None


def transaction_window(facts: Iterable[TransactionFact], now: datetime, days: int) -> TransactionWindow:
    """Counts and CNY sums of the transactions posted in the `days` days up to `now`."""
    start = now - timedelta(days=days)
    inside = [f for f in facts if start < f.posted_at <= now]
    credits = [f for f in inside if f.direction == Direction.CREDIT]
    debits = [f for f in inside if f.direction == Direction.DEBIT]
    by_channel: dict[Channel, int] = {}
    for fact in inside:
        by_channel[fact.channel] = by_channel.get(fact.channel, 0) + 1
    branch = by_channel.get(Channel.BRANCH, 0)
    return TransactionWindow(
        days=days,
        count=len(inside),
        credit_count=len(credits),
        debit_count=len(debits),
        credit_cny=_sum(credits),
        debit_cny=_sum(debits),
        external_outflow_cny=_sum(f for f in debits if f.counterparty == Counterparty.EXTERNAL),
        by_channel=dict(sorted(by_channel.items())),
        branch_share=(Decimal(branch) / len(inside)).quantize(SHARE, ROUND_HALF_EVEN) if inside else ZERO,
    )


def behaviour(facts: Sequence[TransactionFact], now: datetime) -> Behaviour:
    """The 30- and 90-day windows and the newest transaction up to `now`."""
    posted = [f.posted_at for f in facts if f.posted_at <= now]
    return Behaviour(
        last_30d=transaction_window(facts, now, 30),
        last_90d=transaction_window(facts, now, 90),
        last_transaction_at=max(posted, default=None),
    )


def interactions_summary(facts: Iterable[InteractionFact]) -> Interactions:
    """Last contact, complaints still open (recorded minus resolved), last complaint and score."""
    ordered = sorted(facts, key=lambda f: f.occurred_at)
    complaints = sum(1 for f in ordered if f.kind == InteractionKind.COMPLAINT)
    resolved = sum(1 for f in ordered if f.kind == InteractionKind.COMPLAINT_RESOLVED)
    scored = [f.satisfaction for f in ordered if f.satisfaction is not None]
    return Interactions(
        last_contact_at=max((f.occurred_at for f in ordered if f.kind in CONTACTS), default=None),
        open_complaints=max(0, complaints - resolved),
        last_complaint_at=max((f.occurred_at for f in ordered if f.kind == InteractionKind.COMPLAINT), default=None),
        last_satisfaction=scored[-1] if scored else None,
    )


@dataclass(frozen=True)
class TagInputs:
    now: datetime
    accounts: Sequence[AccountState]
    transactions: Sequence[TransactionFact]  # the last 90 days
    behaviour: Behaviour
    customer_since: date | None


def _payroll(facts: TagInputs) -> str | None:
    """Regular monthly credits of a similar size: a salary paid into the bank."""
    largest: dict[tuple[int, int], Decimal] = {}
    start = facts.now - timedelta(days=90)
    for t in facts.transactions:
        if (
            t.direction == Direction.CREDIT
            and t.amount_cny is not None
            and t.amount_cny >= PAYROLL_MIN_CNY
            and start < t.posted_at <= facts.now
        ):
            month = (t.posted_at.year, t.posted_at.month)
            largest[month] = max(largest.get(month, ZERO), t.amount_cny)
    if len(largest) < PAYROLL_MONTHS:
        return None
    median = Decimal(statistics.median(largest.values()))
    if any(abs(v - median) > median * PAYROLL_TOLERANCE for v in largest.values()):
        return None
    return (
        f"salary-like credits in {len(largest)} months of the last 90 days "
        f"(median {median.quantize(CENT):,} CNY, each within {PAYROLL_TOLERANCE:.0%})"
    )


def _holds(products: frozenset[Product], label: str) -> Callable[[TagInputs], str | None]:
    def rule(facts: TagInputs) -> str | None:
        held = sorted({a.product for a in facts.accounts if a.status == "open" and a.product in products})
        return f"holds an open {', '.join(held)} ({label})" if held else None

    return rule


def _counter_heavy(facts: TagInputs) -> str | None:
    window = facts.behaviour.last_90d
    if window.count >= COUNTER_HEAVY_MIN_TRANSACTIONS and window.branch_share >= COUNTER_HEAVY_SHARE:
        return f"{window.branch_share:.0%} of {window.count} transactions in 90 days were made at the counter"
    return None


def _e_banking_user(facts: TagInputs) -> str | None:
    used = sum(n for channel, n in facts.behaviour.last_90d.by_channel.items() if channel in ELECTRONIC)
    return f"{used} mobile or online transactions in the last 90 days" if used else None


def _dormant(facts: TagInputs) -> str | None:
    if not any(a.status == "open" for a in facts.accounts):
        return None
    today = facts.now.date()
    if facts.customer_since is not None and facts.customer_since > today - timedelta(days=DORMANT_DAYS):
        return None
    last = facts.behaviour.last_transaction_at
    if last is not None and last > facts.now - timedelta(days=DORMANT_DAYS):
        return None
    since = f"since {last.date().isoformat()}" if last else "ever recorded"
    return f"open accounts but no transaction {since} ({DORMANT_DAYS} days or more)"


#: Every tag the profile sets, and the rule that sets it.
TAG_RULES: dict[str, Callable[[TagInputs], str | None]] = {
    "payroll": _payroll,
    "credit_customer": _holds(CREDIT_PRODUCTS, "credit"),
    "wealth_holder": _holds(WEALTH_PRODUCTS, "wealth"),
    "counter_heavy": _counter_heavy,
    "e_banking_user": _e_banking_user,
    "dormant": _dormant,
}


def derive_tags(inputs: TagInputs) -> dict[str, str]:
    """Each tag that applies, with the reason in words an RM can read; sorted by tag."""
    found = {tag: rule(inputs) for tag, rule in TAG_RULES.items()}
    return {tag: reason for tag, reason in sorted(found.items()) if reason is not None}


def _sum(facts: Iterable[TransactionFact]) -> Decimal:
    total = sum((f.amount_cny for f in facts if f.amount_cny is not None), ZERO)
    return total.quantize(CENT, ROUND_HALF_EVEN)
