"""Pure profile logic: folding account events, money in CNY, daily AUM history and its average.

No I/O here: functions take plain values and return plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from contracts import ASSET_PRODUCTS, AccountBalance, AccountClosed, AccountOpened, AccountSnapshot, Product

CNY = "CNY"
CENT = Decimal("0.01")
ZERO = Decimal("0")


@dataclass(frozen=True)
class AccountState:
    """What the profile knows of one account of one source system."""

    source: str
    account_ref: str
    customer_ref: str
    product: Product | None = None
    currency: str | None = None
    status: str = "pending"
    opened_on: date | None = None
    closed_on: date | None = None
    maturity_date: date | None = None
    interest_rate: Decimal | None = None
    balance: Decimal | None = None
    balance_version: int | None = None
    balance_as_of: datetime | None = None
    snapshot_on: date | None = None


AccountEvent = AccountOpened | AccountBalance | AccountClosed


def apply_account_event(
    state: AccountState | None, source: str, event: AccountEvent, as_of_day: date | None = None
) -> AccountState:
    """Fold one account event into the account's state.

    Balances are absolute and versioned per account: an older or equal version is ignored, so
    late and duplicate balance events have no effect. A balance that arrives before the
    account is opened is kept on a `pending` account until the opening arrives. A balance of a
    business day (`as_of_day`) that a core-system snapshot already settled is ignored too: the
    snapshot is the authority for its day.
    """
    current = state or AccountState(source=source, account_ref=event.account_ref, customer_ref=event.customer_ref)
    if isinstance(event, AccountOpened):
        return replace(
            current,
            customer_ref=event.customer_ref,
            product=event.product,
            currency=event.currency if current.balance is None else current.currency or event.currency,
            status="closed" if current.status == "closed" else "open",
            opened_on=event.opened_on,
            maturity_date=event.maturity_date,
            interest_rate=event.interest_rate,
        )
    if isinstance(event, AccountBalance):
        if current.balance_version is not None and event.version <= current.balance_version:
            return current
        if current.snapshot_on is not None and as_of_day is not None and as_of_day <= current.snapshot_on:
            return current
        return replace(
            current,
            balance=event.balance,
            currency=event.currency,
            balance_version=event.version,
            balance_as_of=event.as_of,
        )
    return replace(current, status="closed", closed_on=event.closed_on)


def apply_snapshot(
    state: AccountState | None, source: str, snapshot: AccountSnapshot, balance_day: date | None
) -> AccountState:
    """Settle an account's balance to the core system's end-of-day snapshot.

    `balance_day` is the business day of the account's current balance. The snapshot replaces
    the current balance unless that balance belongs to a later day (newer than the snapshot).
    """
    current = state or AccountState(source=source, account_ref=snapshot.account_ref, customer_ref=snapshot.customer_ref)
    settled = max(current.snapshot_on or snapshot.business_date, snapshot.business_date)
    if current.balance is not None and balance_day is not None and balance_day > snapshot.business_date:
        return replace(current, snapshot_on=settled)
    return replace(current, balance=snapshot.balance, currency=snapshot.currency, snapshot_on=settled)


def snapshot_difference(running: Decimal | None, snapshot: Decimal) -> Decimal | None:
    """How far the running balance was off the snapshot, or None when they agree.

    With no running balance for the day there is nothing to compare, so no difference.
    """
    if running is None or running == snapshot:
        return None
    return snapshot - running


@dataclass(frozen=True)
class Totals:
    """A customer's money in CNY, and what could not be converted yet."""

    aum_cny: Decimal = ZERO
    liabilities_cny: Decimal = ZERO
    product_holdings: Mapping[Product, int] = field(default_factory=dict)
    unconverted_currencies: frozenset[str] = frozenset()


def to_cny(amount: Decimal, currency: str, rates: Mapping[str, Decimal]) -> Decimal | None:
    """`amount` in CNY at the latest rate, or None when no rate for `currency` is known yet."""
    if currency == CNY:
        return amount
    rate = rates.get(currency)
    return None if rate is None else amount * rate


def _owned_cny(product: Product, amount_cny: Decimal) -> tuple[Decimal, Decimal]:
    """(assets, liabilities) in CNY that one account balance contributes.

    A negative balance belongs to the other side: an overdrawn current account is owed to the
    bank, a credit card paid in advance is the customer's money.
    """
    signed = amount_cny if product in ASSET_PRODUCTS else -amount_cny
    return (signed, ZERO) if signed >= 0 else (ZERO, -signed)


def customer_totals(accounts: Iterable[AccountState], rates: Mapping[str, Decimal]) -> Totals:
    """AUM and liabilities in CNY over the customer's open accounts.

    Asset-side balances add to AUM; liability-side balances (the amount owed) add to
    liabilities (see `_owned_cny`).
    """
    aum = ZERO
    liabilities = ZERO
    holdings: dict[Product, int] = {}
    unconverted: set[str] = set()
    for account in accounts:
        if account.status != "open" or account.product is None:
            continue
        holdings[account.product] = holdings.get(account.product, 0) + 1
        if account.balance is None or account.currency is None:
            continue
        amount = to_cny(account.balance, account.currency, rates)
        if amount is None:
            unconverted.add(account.currency)
            continue
        assets, owed = _owned_cny(account.product, amount)
        aum += assets
        liabilities += owed
    return Totals(
        aum_cny=aum.quantize(CENT, ROUND_HALF_EVEN),
        liabilities_cny=liabilities.quantize(CENT, ROUND_HALF_EVEN),
        product_holdings=dict(sorted(holdings.items())),
        unconverted_currencies=frozenset(unconverted),
    )


#: Each account's end-of-day balances, keyed by `(source, account_ref)`, for the days they changed.
BalanceHistory = Mapping[tuple[str, str], Sequence[tuple[date, Decimal]]]


def carried_forward(history: Sequence[tuple[date, Decimal]], today: date, days: int) -> list[Decimal]:
    """End-of-day values for the `days` calendar days ending `today`.

    `history` holds values for the days they changed; a day without an entry carries the
    previous day's value forward, and days before the first entry count as zero.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    ordered = sorted(history)
    start = today - timedelta(days=days - 1)
    value = ZERO
    index = 0
    values: list[Decimal] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        while index < len(ordered) and ordered[index][0] <= day:
            value = ordered[index][1]
            index += 1
        values.append(value)
    return values


def average_daily_aum(history: Sequence[tuple[date, Decimal]], today: date, days: int = 30) -> Decimal:
    """The average daily AUM (月日均) over the `days` calendar days ending `today`.

    `history` holds end-of-day AUM for the days it changed (carried forward between them);
    days before the first entry count as zero, so money parked for a day does not buy a tier.
    """
    values = carried_forward(history, today, days)
    return (sum(values, ZERO) / days).quantize(CENT, ROUND_HALF_EVEN)


def daily_aum(
    accounts: Iterable[AccountState],
    balances: BalanceHistory,
    rates: Mapping[str, Decimal],
    today: date,
    days: int = 30,
) -> list[tuple[date, Decimal]]:
    """A customer's end-of-day AUM in CNY for each of the `days` days ending `today`.

    `balances` holds each account's end-of-day balances for the days they changed (keyed by
    `(source, account_ref)`), carried forward between them. An account counts from its first
    balance until the day before it closed; a balance in a currency without a rate is left out
    until a rate arrives (the view reports it unconverted). Rates are the latest known, so a
    figure is comparable across days.
    """
    start = today - timedelta(days=days - 1)
    totals = daily_aum_totals(accounts, balances, rates, today, days)
    return [(start + timedelta(days=i), v.quantize(CENT, ROUND_HALF_EVEN)) for i, v in enumerate(totals)]


def average_daily_aum_cny(
    accounts: Iterable[AccountState],
    balances: BalanceHistory,
    rates: Mapping[str, Decimal],
    today: date,
    days: int = 30,
) -> Decimal:
    """`average_of(daily_aum(...))` without building the dated series: the figure tiers use."""
    totals = daily_aum_totals(accounts, balances, rates, today, days)
    return (sum((v.quantize(CENT, ROUND_HALF_EVEN) for v in totals), ZERO) / days).quantize(CENT, ROUND_HALF_EVEN)


def daily_aum_totals(
    accounts: Iterable[AccountState],
    balances: BalanceHistory,
    rates: Mapping[str, Decimal],
    today: date,
    days: int,
) -> list[Decimal]:
    """The unrounded AUM in CNY of each of the `days` days ending `today` (see `daily_aum`).

    Each account adds its converted balance from the day it was set until the next change (a
    difference array: one step per balance change rather than one addition per account and
    day); Decimal addition is exact here, so the totals equal the day-by-day sums.
    """
    start = today - timedelta(days=days - 1)
    steps = [ZERO] * (days + 1)
    for account in accounts:
        if account.product is None or account.currency is None or account.status == "pending":
            continue
        history = balances.get((account.source, account.account_ref), ())
        if not history:
            continue
        counted = days if account.closed_on is None else max(0, min(days, (account.closed_on - start).days))
        share = ZERO  # what the account adds to each day from the last step on
        for day, value in sorted(history):
            offset = max(0, (day - start).days)
            if offset >= counted:
                break
            amount = to_cny(value, account.currency, rates)
            new = ZERO if amount is None else _owned_cny(account.product, amount)[0]
            steps[offset] += new - share
            share = new
        steps[counted] -= share
    totals = []
    running = ZERO
    for step in steps[:days]:
        running += step
        totals.append(running)
    return totals


def average_of(values: Sequence[tuple[date, Decimal]]) -> Decimal:
    """The plain average of daily values, to the fen."""
    if not values:
        return ZERO
    return (sum((v for _, v in values), ZERO) / len(values)).quantize(CENT, ROUND_HALF_EVEN)
