"""Pure profile logic: folding account events, money in CNY, and the daily AUM average.

No I/O here: functions take plain values and return plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from contracts import ASSET_PRODUCTS, AccountBalance, AccountClosed, AccountOpened, Product

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


AccountEvent = AccountOpened | AccountBalance | AccountClosed


def apply_account_event(state: AccountState | None, source: str, event: AccountEvent) -> AccountState:
    """Fold one account event into the account's state.

    Balances are absolute and versioned per account: an older or equal version is ignored, so
    late and duplicate balance events have no effect. A balance that arrives before the
    account is opened is kept on a `pending` account until the opening arrives.
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
        return replace(
            current,
            balance=event.balance,
            currency=event.currency,
            balance_version=event.version,
            balance_as_of=event.as_of,
        )
    return replace(current, status="closed", closed_on=event.closed_on)


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


def customer_totals(accounts: Iterable[AccountState], rates: Mapping[str, Decimal]) -> Totals:
    """AUM and liabilities in CNY over the customer's open accounts.

    Asset-side balances add to AUM; liability-side balances (the amount owed) add to
    liabilities. A negative balance belongs to the other side: an overdrawn current account is
    owed to the bank, a credit card paid in advance is the customer's money.
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
        asset_side = account.product in ASSET_PRODUCTS
        signed = amount if asset_side else -amount
        if signed >= 0:
            aum += signed
        else:
            liabilities += -signed
    return Totals(
        aum_cny=aum.quantize(CENT, ROUND_HALF_EVEN),
        liabilities_cny=liabilities.quantize(CENT, ROUND_HALF_EVEN),
        product_holdings=dict(sorted(holdings.items())),
        unconverted_currencies=frozenset(unconverted),
    )


def average_daily_aum(history: Sequence[tuple[date, Decimal]], today: date, days: int = 30) -> Decimal:
    """The average daily AUM (月日均) over the `days` calendar days ending `today`.

    `history` holds end-of-day AUM for the days it changed; a day without an entry carries the
    previous day's value forward, and days before the first entry count as zero, so money
    parked for a day does not buy a tier.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    ordered = sorted(history)
    start = today - timedelta(days=days - 1)
    value = ZERO
    index = 0
    while index < len(ordered) and ordered[index][0] < start:
        value = ordered[index][1]
        index += 1
    total = ZERO
    for offset in range(days):
        day = start + timedelta(days=offset)
        while index < len(ordered) and ordered[index][0] <= day:
            value = ordered[index][1]
            index += 1
        total += value
    return (total / days).quantize(CENT, ROUND_HALF_EVEN)
