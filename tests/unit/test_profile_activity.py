"""Pure activity logic: transaction windows, interaction summary and the tag rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from contracts import Channel, Counterparty, Direction, InteractionKind, Product
from services.profile.activity import (
    InteractionFact,
    TagInputs,
    TransactionFact,
    behaviour,
    derive_tags,
    interactions_summary,
    transaction_window,
)
from services.profile.domain import AccountState

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def tx(
    days_ago: float,
    amount: str | None = "100.00",
    *,
    direction: Direction = Direction.DEBIT,
    channel: Channel = Channel.MOBILE,
    counterparty: Counterparty = Counterparty.INTERNAL,
) -> TransactionFact:
    return TransactionFact(
        posted_at=NOW - timedelta(days=days_ago),
        direction=direction,
        channel=channel,
        counterparty=counterparty,
        amount_cny=None if amount is None else Decimal(amount),
    )


def account(product: Product, status: str = "open") -> AccountState:
    return AccountState(source="core", account_ref=f"{product}", customer_ref="C1", product=product, status=status)


def tags(
    transactions: list[TransactionFact],
    accounts: list[AccountState] | None = None,
    since: date | None = date(2020, 1, 1),
) -> dict[str, str]:
    return derive_tags(
        TagInputs(NOW, accounts or [account(Product.CURRENT)], transactions, behaviour(transactions, NOW), since)
    )


def test_a_window_counts_and_sums_by_direction_channel_and_counterparty() -> None:
    window = transaction_window(
        [
            tx(1, "50.005", direction=Direction.CREDIT, channel=Channel.BRANCH),
            tx(2, "20.00", counterparty=Counterparty.EXTERNAL),
            tx(3, "30.00", channel=Channel.BRANCH),
            tx(4, None, channel=Channel.ATM),  # no rate yet: counted, not summed
        ],
        NOW,
        30,
    )
    assert (window.count, window.credit_count, window.debit_count) == (4, 1, 3)
    assert (window.credit_cny, window.debit_cny) == (Decimal("50.00"), Decimal("50.00"))
    assert window.external_outflow_cny == Decimal("20.00")
    assert window.by_channel == {Channel.ATM: 1, Channel.BRANCH: 2, Channel.MOBILE: 1}
    assert window.branch_share == Decimal("0.5000")


def test_a_transaction_exactly_30_days_old_is_outside_the_30_day_window_but_inside_the_90_day_one() -> None:
    seen = behaviour([tx(30), tx(29.9), tx(95)], NOW)
    assert (seen.last_30d.count, seen.last_90d.count) == (1, 2)
    assert seen.last_transaction_at == NOW - timedelta(days=29.9)
    empty = transaction_window([], NOW, 30)
    assert (empty.count, empty.branch_share, empty.credit_cny) == (0, Decimal(0), Decimal("0.00"))


def test_a_resolved_complaint_closes_it_and_the_newest_score_counts() -> None:
    at = NOW - timedelta(days=10)
    summary = interactions_summary(
        [
            InteractionFact(InteractionKind.COMPLAINT, at, None),
            InteractionFact(InteractionKind.COMPLAINT, at + timedelta(days=1), None),
            InteractionFact(InteractionKind.COMPLAINT_RESOLVED, at + timedelta(days=2), 2),
            InteractionFact(InteractionKind.VISIT, at + timedelta(days=3), 5),
            InteractionFact(InteractionKind.CALL, at - timedelta(days=3), 1),
        ]
    )
    assert summary.open_complaints == 1
    assert summary.last_complaint_at == at + timedelta(days=1)
    assert summary.last_contact_at == at + timedelta(days=3)
    assert summary.last_satisfaction == 5
    assert interactions_summary([InteractionFact(InteractionKind.COMPLAINT_RESOLVED, at, None)]).open_complaints == 0


def salary(days_ago: int, amount: str) -> TransactionFact:
    return tx(days_ago, amount, direction=Direction.CREDIT, channel=Channel.ONLINE, counterparty=Counterparty.EXTERNAL)


def test_payroll_needs_similar_credits_in_three_months() -> None:
    # 20 Nov, 20 Oct, 21 Sep: three months with a salary of about 12,000.
    regular = [salary(0, "12000.00"), salary(31, "12500.00"), salary(60, "11800.00"), salary(5, "200.00")]
    assert "12,000.00" in tags(regular)["payroll"]
    assert "payroll" not in tags(regular[:2])  # two months are not a pattern
    irregular = [salary(0, "12000.00"), salary(31, "30000.00"), salary(60, "4000.00")]
    assert "payroll" not in tags(irregular)
    small = [salary(0, "900.00"), salary(31, "900.00"), salary(60, "900.00")]
    assert "payroll" not in tags(small)


def test_product_tags_follow_open_accounts_only() -> None:
    held = tags([], [account(Product.CREDIT_CARD), account(Product.FUND), account(Product.MORTGAGE, "closed")])
    assert "credit_card" in held["credit_customer"]
    assert "mortgage" not in held["credit_customer"]
    assert "fund" in held["wealth_holder"]
    assert "credit_customer" not in tags([], [account(Product.MORTGAGE, "closed"), account(Product.CURRENT)])


def test_counter_heavy_needs_enough_transactions_mostly_at_the_counter() -> None:
    counter = [tx(d, channel=Channel.BRANCH) for d in range(1, 4)] + [tx(5, channel=Channel.ATM)] * 2
    assert "counter_heavy" in tags(counter)  # 3 of 5 at the counter
    assert "counter_heavy" not in tags(counter[:4])  # only 4 transactions
    assert "counter_heavy" not in tags([*counter, *[tx(6, channel=Channel.POS)] * 2])  # 3 of 7
    assert "e_banking_user" not in tags(counter)


def test_e_banking_user_needs_a_mobile_or_online_transaction() -> None:
    assert tags([tx(80, channel=Channel.ONLINE)])["e_banking_user"].startswith("1 ")
    assert "e_banking_user" not in tags([tx(95, channel=Channel.ONLINE)])


def test_dormant_means_open_accounts_and_no_transaction_for_90_days_but_not_a_new_customer() -> None:
    assert "dormant" in tags([tx(120)])
    assert "dormant" in tags([])
    assert "dormant" not in tags([tx(10)])
    assert "dormant" not in tags([], since=NOW.date() - timedelta(days=30))
    assert "dormant" not in tags([], accounts=[account(Product.CURRENT, "closed")])
