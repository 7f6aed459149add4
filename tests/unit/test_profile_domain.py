"""Pure profile logic: account folding, money in CNY, the daily AUM average."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import AccountBalance, AccountClosed, AccountOpened, AccountSnapshot, IdType, Product
from services.profile.domain import (
    AccountState,
    apply_account_event,
    apply_snapshot,
    average_daily_aum,
    average_daily_aum_cny,
    average_of,
    carried_forward,
    customer_totals,
    daily_aum,
    daily_aum_totals,
    snapshot_difference,
    to_cny,
)
from services.profile.identity import IdentityProtector, blocked_reason, canonical_id_number, normalise_id_number
from services.profile.settings import DEFAULT_IDENTITY_BLOCKLIST

AT = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def opened(product: Product = Product.CURRENT, currency: str = "CNY", account_ref: str = "A1") -> AccountOpened:
    return AccountOpened(
        account_ref=account_ref, customer_ref="C1", product=product, currency=currency, opened_on=date(2026, 1, 1)
    )


def balance(amount: str, version: int, currency: str = "CNY", account_ref: str = "A1") -> AccountBalance:
    return AccountBalance(
        account_ref=account_ref,
        customer_ref="C1",
        balance=Decimal(amount),
        currency=currency,
        as_of=AT,
        version=version,
    )


def account(product: Product, amount: str, currency: str = "CNY", status: str = "open") -> AccountState:
    return AccountState(
        source="core",
        account_ref=f"{product}-{amount}",
        customer_ref="C1",
        product=product,
        currency=currency,
        status=status,
        balance=Decimal(amount),
        balance_version=1,
    )


def test_a_newer_balance_version_replaces_the_balance() -> None:
    state = apply_account_event(None, "core", opened())
    state = apply_account_event(state, "core", balance("100.00", 1))
    state = apply_account_event(state, "core", balance("250.50", 2))
    assert state.balance == Decimal("250.50")
    assert state.balance_version == 2


@pytest.mark.parametrize("late_version", [1, 2])
def test_an_older_or_equal_balance_version_is_ignored(late_version: int) -> None:
    state = apply_account_event(None, "core", balance("500.00", 2))
    assert apply_account_event(state, "core", balance("1.00", late_version)) == state


def test_a_balance_before_the_opening_is_kept_on_a_pending_account_until_it_opens() -> None:
    pending = apply_account_event(None, "core", balance("900.00", 1))
    assert pending.status == "pending"
    assert customer_totals([pending], {}).aum_cny == 0
    opened_state = apply_account_event(pending, "core", opened(Product.FUND))
    assert opened_state.status == "open"
    assert opened_state.balance == Decimal("900.00")
    assert customer_totals([opened_state], {}).aum_cny == Decimal("900.00")


def test_a_closed_account_no_longer_counts() -> None:
    state = apply_account_event(None, "core", opened())
    state = apply_account_event(state, "core", balance("100.00", 1))
    closed = apply_account_event(
        state, "core", AccountClosed(account_ref="A1", customer_ref="C1", closed_on=date(2026, 11, 2))
    )
    assert closed.status == "closed"
    assert customer_totals([closed], {}).aum_cny == 0


def test_assets_add_to_aum_and_liabilities_to_liabilities() -> None:
    totals = customer_totals(
        [
            account(Product.CURRENT, "1000.10"),
            account(Product.WEALTH_PRODUCT, "20000"),
            account(Product.CREDIT_CARD, "3000.25"),
            account(Product.MORTGAGE, "400000"),
        ],
        {},
    )
    assert totals.aum_cny == Decimal("21000.10")
    assert totals.liabilities_cny == Decimal("403000.25")
    assert totals.product_holdings == {
        Product.CURRENT: 1,
        Product.WEALTH_PRODUCT: 1,
        Product.CREDIT_CARD: 1,
        Product.MORTGAGE: 1,
    }


def test_an_overdrawn_current_account_is_a_liability_not_negative_aum() -> None:
    totals = customer_totals([account(Product.CURRENT, "-120.00"), account(Product.FUND, "500")], {})
    assert totals.aum_cny == Decimal("500.00")
    assert totals.liabilities_cny == Decimal("120.00")


def test_foreign_currency_is_converted_at_the_latest_rate_and_rounded_to_the_fen() -> None:
    totals = customer_totals([account(Product.CURRENT, "100.00", "USD")], {"USD": Decimal("7.123456")})
    assert totals.aum_cny == Decimal("712.35")
    assert totals.unconverted_currencies == frozenset()


def test_a_currency_without_a_rate_is_held_and_reported_unconverted() -> None:
    totals = customer_totals([account(Product.CURRENT, "100.00", "EUR"), account(Product.CURRENT, "5")], {})
    assert totals.aum_cny == Decimal("5.00")
    assert totals.unconverted_currencies == frozenset({"EUR"})


def test_money_arithmetic_stays_exact_in_decimal() -> None:
    totals = customer_totals([account(Product.CURRENT, "0.10"), account(Product.FUND, "0.20")], {})
    assert totals.aum_cny == Decimal("0.30")


def test_the_daily_average_carries_values_forward_and_counts_days_before_history_as_zero() -> None:
    today = date(2026, 11, 30)
    history = [(date(2026, 11, 21), Decimal("300000"))]
    # Ten days at 300,000 over a 30-day window.
    assert average_daily_aum(history, today, 30) == Decimal("100000.00")


def test_the_daily_average_uses_the_last_value_before_the_window() -> None:
    today = date(2026, 11, 30)
    history = [(date(2026, 9, 1), Decimal("60000")), (date(2026, 11, 16), Decimal("0"))]
    # 15 days at 60,000 (carried in from September), then 15 days at zero.
    assert average_daily_aum(history, today, 30) == Decimal("30000.00")


def test_the_daily_average_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError, match="positive"):
        average_daily_aum([], date(2026, 1, 1), 0)


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("110101 19900101 123x", "11010119900101123X"),
        ("１１０１０１１９９００１０１１２３Ｘ", "11010119900101123X"),  # noqa: RUF001 full-width digits are the point
        ("e1234-5678", "E12345678"),
    ],
)
def test_identity_numbers_are_normalised_before_hashing(written: str, normal: str) -> None:
    assert normalise_id_number(written) == normal


def test_the_identity_hash_is_keyed_and_ignores_how_the_number_was_written() -> None:
    protector = IdentityProtector("key-one")
    assert protector.hash("resident_id", "110101 19900101 123x") == protector.hash("resident_id", "11010119900101123X")
    assert protector.hash("resident_id", "11010119900101123X") != IdentityProtector("key-two").hash(
        "resident_id", "11010119900101123X"
    )
    assert "123X" not in protector.hash("resident_id", "11010119900101123X")


def test_identity_numbers_are_masked_but_for_the_last_four() -> None:
    assert IdentityProtector.mask("110101199001011234") == "**************1234"
    assert IdentityProtector.mask("12") == "**"


def test_a_first_generation_15_digit_resident_id_matches_its_18_digit_form() -> None:
    # The standard's own worked example: 110105 491231 002 is 11010519491231002X.
    assert canonical_id_number(IdType.RESIDENT_ID, "110105491231002") == "11010519491231002X"
    protector = IdentityProtector("key")
    assert protector.hash(IdType.RESIDENT_ID, "110105 491231 002") == protector.hash(
        IdType.RESIDENT_ID, "11010519491231002x"
    )
    # Other documents are never rewritten.
    assert canonical_id_number(IdType.PASSPORT, "110105491231002") == "110105491231002"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("000000000000000000", "repeats one character"),
        ("  ", "empty"),
        ("123456789012345678", "blocklist"),
        ("1234 5678 9012 3456 78", "blocklist"),
    ],
)
def test_junk_and_blocklisted_identity_numbers_never_merge(number: str, reason: str) -> None:
    found = blocked_reason(canonical_id_number(IdType.RESIDENT_ID, number), DEFAULT_IDENTITY_BLOCKLIST)
    assert found is not None
    assert reason in found


def test_a_real_identity_number_is_not_blocked() -> None:
    assert blocked_reason("11010519491231002X", DEFAULT_IDENTITY_BLOCKLIST) is None


def snapshot(amount: str, day: date) -> AccountSnapshot:
    return AccountSnapshot(
        business_date=day, account_ref="A1", customer_ref="C1", balance=Decimal(amount), currency="CNY"
    )


def test_a_snapshot_settles_the_balance_of_its_day_and_later_balances_of_that_day_are_ignored() -> None:
    state = apply_account_event(None, "core", opened())
    state = apply_account_event(state, "core", balance("100.00", 1), date(2026, 11, 1))
    settled = apply_snapshot(state, "core", snapshot("90.00", date(2026, 11, 1)), date(2026, 11, 1))
    assert (settled.balance, settled.snapshot_on) == (Decimal("90.00"), date(2026, 11, 1))
    # A higher version for the settled day does not override the core system's figure...
    assert apply_account_event(settled, "core", balance("120.00", 2), date(2026, 11, 1)) == settled
    # ...but a balance of the next day does.
    assert apply_account_event(settled, "core", balance("120.00", 2), date(2026, 11, 2)).balance == Decimal("120.00")


def test_a_snapshot_older_than_the_current_balance_does_not_replace_it() -> None:
    state = apply_account_event(apply_account_event(None, "core", opened()), "core", balance("500.00", 3))
    settled = apply_snapshot(state, "core", snapshot("90.00", date(2026, 10, 30)), date(2026, 11, 1))
    assert settled.balance == Decimal("500.00")
    assert settled.snapshot_on == date(2026, 10, 30)


def test_a_snapshot_difference_is_the_snapshot_minus_the_running_balance() -> None:
    assert snapshot_difference(Decimal("100.00"), Decimal("90.00")) == Decimal("-10.00")
    assert snapshot_difference(Decimal("90.00"), Decimal("90.0")) is None
    assert snapshot_difference(None, Decimal("90.00")) is None


def test_daily_aum_sums_accounts_day_by_day_with_closing_and_unconverted_currencies() -> None:
    today = date(2026, 11, 30)
    deposit = replace(account(Product.TIME_DEPOSIT, "0"), account_ref="D")
    usd = replace(account(Product.FUND, "0", currency="USD"), account_ref="U")
    closed = replace(account(Product.CURRENT, "0"), account_ref="X", status="closed", closed_on=date(2026, 11, 29))
    card = replace(account(Product.CREDIT_CARD, "0"), account_ref="K")
    history = {
        ("core", "D"): [(date(2026, 11, 1), Decimal("1000")), (date(2026, 11, 29), Decimal("3000"))],
        ("core", "U"): [(date(2026, 11, 1), Decimal("10"))],
        ("core", "X"): [(date(2026, 11, 28), Decimal("500"))],
        ("core", "K"): [(date(2026, 11, 1), Decimal("800"))],  # owed: a liability, never AUM
    }
    without_rate = dict(daily_aum([deposit, usd, closed, card], history, {}, today, 3))
    assert without_rate == {
        date(2026, 11, 28): Decimal("1500.00"),
        date(2026, 11, 29): Decimal("3000.00"),  # the current account closed that day
        date(2026, 11, 30): Decimal("3000.00"),
    }
    with_rate = dict(daily_aum([deposit, usd, closed, card], history, {"USD": Decimal("7.1")}, today, 3))
    assert with_rate[date(2026, 11, 30)] == Decimal("3071.00")
    assert average_of(list(with_rate.items())) == Decimal("2571.00")


def _day_by_day(
    accounts: list[AccountState], history: dict[tuple[str, str], list[tuple[date, Decimal]]], rates: dict[str, Decimal]
) -> list[Decimal]:
    """The daily totals the plain way: every account's carried-forward value on every day."""
    today, days = date(2026, 11, 30), 30
    start = date(2026, 11, 1)
    totals = [Decimal(0)] * days
    for a in accounts:
        if a.product is None or a.currency is None or a.status == "pending":
            continue
        counted = days if a.closed_on is None else max(0, min(days, (a.closed_on - start).days))
        for offset, value in enumerate(carried_forward(history.get((a.source, a.account_ref), []), today, days)):
            amount = to_cny(value, a.currency, rates)
            if offset < counted and amount is not None:
                signed = amount if a.product.is_asset else -amount
                totals[offset] += max(signed, Decimal(0))
    return totals


DAYS_AROUND = st.dates(min_value=date(2026, 9, 1), max_value=date(2026, 12, 5))
AMOUNTS = st.decimals(min_value=-(10**7), max_value=10**9, places=2, allow_nan=False)
ACCOUNTS = st.lists(
    st.tuples(
        st.sampled_from([Product.CURRENT, Product.TIME_DEPOSIT, Product.CREDIT_CARD, Product.FUND]),
        st.sampled_from(["CNY", "USD", "HKD"]),
        st.sampled_from(["open", "closed", "pending"]),
        st.one_of(st.none(), DAYS_AROUND),
        st.dictionaries(DAYS_AROUND, AMOUNTS, max_size=8),
    ),
    max_size=5,
)


@given(ACCOUNTS, st.booleans())
def test_daily_aum_totals_equal_the_day_by_day_sums(
    drawn: list[tuple[Product, str, str, date | None, dict[date, Decimal]]], usd_known: bool
) -> None:
    accounts: list[AccountState] = []
    history: dict[tuple[str, str], list[tuple[date, Decimal]]] = {}
    for i, (product, currency, status, closed_on, days) in enumerate(drawn):
        accounts.append(
            AccountState(
                source="core",
                account_ref=f"A{i}",
                customer_ref="C1",
                product=product,
                currency=currency,
                status=status,
                closed_on=closed_on if status == "closed" else None,
            )
        )
        history[("core", f"A{i}")] = sorted(days.items())
    rates = {"HKD": Decimal("0.912345")} | ({"USD": Decimal("7.1234")} if usd_known else {})
    today = date(2026, 11, 30)

    assert daily_aum_totals(accounts, history, rates, today, 30) == _day_by_day(accounts, history, rates)
    assert average_daily_aum_cny(accounts, history, rates, today) == average_of(
        daily_aum(accounts, history, rates, today)
    )


def test_customers_linked_through_any_identity_end_in_one_merge_group() -> None:
    from services.profile.handlers import _connected

    groups = _connected([{"A", "B"}, {"C", "D"}, {"B", "C"}, {"E", "F"}])
    assert sorted(sorted(g) for g in groups) == [["A", "B", "C", "D"], ["E", "F"]]
