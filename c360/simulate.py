"""A synthetic bank: deterministic from a seed, any size, by default the branch of DOMAIN.md.

The default bank has exactly 411,400 / 39,200 / 8,467 customers in the AUM bands 0 to 50k /
50k to 200k / 200k and above (CNY), whose AUM sums per band are 1,984,000,000 / 3,729,000,000 /
3,227,000,000 CNY to the yuan. `scale` keeps the band shares and mean AUM at any size.

Each customer is known to core deposits, and some also to the cards, loans and wealth systems,
each writing the resident id its own way (18 digits, the old 15-digit form, a lower-case `x`,
spaces, full-width digits). Money sits in current accounts, time deposits, wealth products and
funds, some in USD (with an FX rate), with credit cards and loans on the liability side.
Balances arrive as versioned balance events with `as_of` times over the past 60 days, rising
towards today's balance, so the 30-day average daily AUM is real history; end-of-day snapshots
occasionally disagree with the running balance (and, being the authority, correct it).
Transactions (about 29% electronic), interactions (with some complaints), birthdays and
maturities are spread over the year.

`GroundTruth` holds what the platform must end with: per customer the current AUM, band, 30-day
average and expected tier; per band the counts and sums.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from contracts import (
    AccountBalance,
    AccountOpened,
    AccountSnapshot,
    Channel,
    CloudEvent,
    Counterparty,
    CustomerUpserted,
    Direction,
    FxRate,
    IdType,
    InteractionKind,
    InteractionRecorded,
    Product,
    TransactionPosted,
    build_event,
)

CENT = Decimal("0.01")
ZERO = Decimal(0)
BUSINESS_ZONE = ZoneInfo("Asia/Shanghai")
#: (lower bound, customers, AUM sum in CNY) per band of the branch in DOMAIN.md.
BRANCH_BANDS: tuple[tuple[int, int, int], ...] = (
    (0, 411_400, 1_984_000_000),
    (50_000, 39_200, 3_729_000_000),
    (200_000, 8_467, 3_227_000_000),
)
BAND_CEILINGS = (50_000, 200_000, 60_000_000)
#: The default tier policy's floors (services/scoring/tier_policy.yaml).
TIER_FLOORS: tuple[tuple[str, int], ...] = (
    ("mass", 0),
    ("affluent", 50_000),
    ("vip", 200_000),
    ("wealth", 1_000_000),
    ("private", 2_000_000),
)
FX_RATES = {"USD": Decimal("7.12")}
BRANCHES = [f"BR{n:02d}" for n in range(1, 21)]
SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun", "Ma", "Zhu"]
GIVEN = ["Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jun", "Hui", "Tao", "Ping", "Hong", "Bo"]
ELECTRONIC_SHARE = 0.29
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def resident_id(region: str, born: date, serial: int) -> str:
    """A valid 18-digit resident id (with its check character)."""
    first17 = f"{region}{born:%Y%m%d}{serial:03d}"
    return first17 + _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def written(id_number: str, style: str) -> str:
    """The way a source system writes a resident id."""
    if style == "old15":  # the first-generation form: no century, no check character
        return id_number[:6] + id_number[8:17]
    if style == "lower":
        return id_number.lower()
    if style == "spaced":
        return " ".join(id_number[i : i + 6] for i in range(0, 18, 6))
    if style == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in id_number)
    return id_number


def tier_of(average: Decimal) -> str:
    chosen = TIER_FLOORS[0][0]
    for name, floor in TIER_FLOORS:
        if average >= floor:
            chosen = name
    return chosen


def band_of(aum: Decimal) -> int:
    return sum(1 for floor, _, _ in BRANCH_BANDS[1:] if aum >= floor)


def allocate(rng: random.Random, count: int, total: int, low: int, high: int) -> list[int]:
    """`count` whole-yuan amounts in [low, high) that add up to exactly `total`, long-tailed."""
    if count == 0:
        if total:
            raise ValueError("a band without customers cannot hold AUM")
        return []
    floor_ = max(low, 1)
    if not floor_ * count <= total <= (high - 1) * count:
        raise ValueError(f"{count} amounts in [{low}, {high}) cannot add up to {total}")
    mean = total / count
    sigma = 1.0
    raw = [min(max(rng.lognormvariate(0, sigma), 1e-3), 50.0) for _ in range(count)]
    scale = (mean - floor_) / (sum(raw) / count)
    amounts = [min(high - 1, floor_ + int(r * scale)) for r in raw]
    residual = total - sum(amounts)
    # Spread what rounding and clipping left over, a yuan at a time in bulk, within the bounds.
    order = list(range(count))
    rng.shuffle(order)
    while residual:
        step = 1 if residual > 0 else -1
        moved = False
        for i in order:
            room = (high - 1 - amounts[i]) if step > 0 else (amounts[i] - floor_)
            if room <= 0:
                continue
            take = min(room, abs(residual), max(1, abs(residual) // count + 1))
            amounts[i] += step * take
            residual -= step * take
            moved = True
            if not residual:
                break
        if not moved:
            raise ValueError("cannot place the residual within the band")
    return amounts


@dataclass
class Account:
    source: str
    ref: str
    product: Product
    currency: str
    balance: Decimal  # today's balance
    opened_on: date
    maturity: date | None = None
    history: list[tuple[date, Decimal]] = field(default_factory=list)  # (business day, balance)
    snapshot: tuple[date, Decimal] | None = None  # a disagreeing end-of-day snapshot


@dataclass
class Customer:
    number: int
    refs: dict[str, str]  # source -> customer_ref
    name: str
    id_number: str
    born: date
    branch: str
    consent: bool
    aum: Decimal
    accounts: list[Account]

    @property
    def key(self) -> str:
        return self.refs["core-deposits"]


def _cny(account: Account, amount: Decimal) -> Decimal:
    return amount if account.currency == "CNY" else amount * FX_RATES[account.currency]


def average_30d(accounts: Sequence[Account], today: date) -> Decimal:
    """The documented rule: end-of-day asset balances in CNY at the latest rate, carried forward
    between changes (zero before the first); each day's AUM rounded to the fen, as profile keeps
    it; averaged over the 30 days ending today."""
    daily = [ZERO] * 30
    start = today - timedelta(days=29)
    for account in accounts:
        if not account.product.is_asset:
            continue
        days = dict(account.history)
        if account.snapshot is not None:
            days[account.snapshot[0]] = account.snapshot[1]
        value = ZERO
        for day, amount in sorted(days.items()):
            if day < start:
                value = amount
        for offset in range(30):
            day = start + timedelta(days=offset)
            if day in days:
                value = days[day]
            daily[offset] += _cny(account, value)
    total = sum((aum.quantize(CENT, ROUND_HALF_EVEN) for aum in daily), ZERO)
    return (total / 30).quantize(CENT, ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Truth:
    customer_key: str
    aum_cny: Decimal
    band: int
    aum_avg_30d_cny: Decimal
    tier: str


@dataclass
class GroundTruth:
    today: date
    customers: list[Truth]

    def bands(self) -> list[dict[str, object]]:
        rows = []
        for index, (floor, _, _) in enumerate(BRANCH_BANDS):
            members = [t for t in self.customers if t.band == index]
            rows.append(
                {
                    "band": index,
                    "floor_cny": floor,
                    "customers": len(members),
                    "aum_cny": str(sum((t.aum_cny for t in members), ZERO).quantize(CENT)),
                }
            )
        return rows

    def tiers(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for truth in self.customers:
            counts[truth.tier] = counts.get(truth.tier, 0) + 1
        return counts

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "customers.jsonl").open("w") as out:
            for t in self.customers:
                out.write(
                    json.dumps(
                        {
                            "customer_ref": t.customer_key,
                            "aum_cny": str(t.aum_cny),
                            "band": t.band,
                            "aum_avg_30d_cny": str(t.aum_avg_30d_cny),
                            "tier": t.tier,
                        }
                    )
                    + "\n"
                )
        summary = {"today": self.today.isoformat(), "bands": self.bands(), "tiers": self.tiers()}
        (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


class SyntheticBank:
    """The bank: `customers()` builds it, `events()` tells its history, `truth()` checks it."""

    def __init__(self, *, seed: int = 7, scale: float = 1.0, now: datetime | None = None) -> None:
        self.seed = seed
        self.now = now or datetime.now(UTC)
        self.today = self.now.astimezone(BUSINESS_ZONE).date()
        self.bands = [
            (floor, round(count * scale), round(total * scale) if round(count * scale) else 0)
            for floor, count, total in BRANCH_BANDS
        ]
        self._customers: list[Customer] | None = None
        self._issued: set[str] = set()  # the resident ids given out
        self._namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"https://c360.dev/simulate/{seed}/{scale}")
        self._sequence = 0

    def customers(self) -> list[Customer]:
        if self._customers is None:
            self._customers = self._build()
        return self._customers

    def _build(self) -> list[Customer]:
        rng = random.Random(self.seed)
        aums: list[int] = []
        for (floor, count, total), ceiling in zip(self.bands, BAND_CEILINGS, strict=True):
            # Keep band averages feasible at tiny scales.
            total = min(max(total, max(floor, 1) * count), (ceiling - 1) * count)
            aums += allocate(rng, count, total, floor, ceiling)
        order = list(range(len(aums)))
        rng.shuffle(order)
        return [self._customer(rng, n + 1, Decimal(aums[i]).quantize(CENT)) for n, i in enumerate(order)]

    def _customer(self, rng: random.Random, number: int, aum: Decimal) -> Customer:
        born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 62))
        region, serial = f"1101{rng.randrange(1, 99):02d}", rng.randrange(1, 999)
        while (id_number := resident_id(region, born, serial)) in self._issued:
            # Two people never share a resident id (the profile rightly takes them for one): the
            # next serial, without drawing again, so the rest of the bank stays as it was.
            serial = serial % 998 + 1
        self._issued.add(id_number)
        refs = {"core-deposits": f"SIM-{self.seed}-{number:07d}"}
        rich = aum >= 50_000
        for source, chance in (("cards", 0.35), ("loans", 0.12), ("wealth", 0.6 if rich else 0.05)):
            if rng.random() < chance:
                refs[source] = f"{source[:2].upper()}-{self.seed}-{number:07d}"
        accounts = self._accounts(rng, number, refs, aum)
        return Customer(
            number=number,
            refs=refs,
            name=f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}",
            id_number=id_number,
            born=born,
            branch=rng.choice(BRANCHES),
            consent=rng.random() < 0.7,
            aum=aum,
            accounts=accounts,
        )

    def _accounts(self, rng: random.Random, number: int, refs: dict[str, str], aum: Decimal) -> list[Account]:
        today = self.today
        opened = today - timedelta(days=rng.randrange(61, 3650))
        accounts: list[Account] = []
        remaining = aum
        # Part of the money in products, the rest in the current account (which takes the cents).
        if "wealth" in refs and aum >= 10_000:
            share = (aum * Decimal(rng.randrange(20, 60)) / 100).quantize(Decimal(1))
            product = rng.choice([Product.WEALTH_PRODUCT, Product.FUND])
            maturity = today + timedelta(days=rng.randrange(5, 360)) if product is Product.WEALTH_PRODUCT else None
            accounts.append(Account("wealth", f"W{self.seed}-{number:07d}", product, "CNY", share, opened, maturity))
            remaining -= share
        if aum >= 5_000 and rng.random() < 0.5:
            share = (remaining * Decimal(rng.randrange(20, 70)) / 100).quantize(Decimal(1))
            maturity = today + timedelta(days=rng.randrange(5, 720))
            accounts.append(
                Account(
                    "core-deposits", f"D{self.seed}-{number:07d}T", Product.TIME_DEPOSIT, "CNY", share, opened, maturity
                )
            )
            remaining -= share
        if aum >= 20_000 and rng.random() < 0.06:
            dollars = (remaining * Decimal("0.3") / FX_RATES["USD"]).quantize(Decimal(1))
            if dollars > 0:
                accounts.append(
                    Account("core-deposits", f"D{self.seed}-{number:07d}U", Product.CURRENT, "USD", dollars, opened)
                )
                remaining -= dollars * FX_RATES["USD"]
        accounts.append(
            Account("core-deposits", f"D{self.seed}-{number:07d}C", Product.CURRENT, "CNY", remaining, opened)
        )
        if "cards" in refs:
            owed = Decimal(rng.randrange(0, 30_000))
            accounts.append(Account("cards", f"K{self.seed}-{number:07d}", Product.CREDIT_CARD, "CNY", owed, opened))
        if "loans" in refs:
            owed = Decimal(rng.randrange(10_000, 800_000))
            maturity = today + timedelta(days=rng.randrange(30, 7000))
            accounts.append(
                Account("loans", f"L{self.seed}-{number:07d}", Product.MORTGAGE, "CNY", owed, opened, maturity)
            )
        for account in accounts:
            self._history(rng, account)
        return accounts

    def _history(self, rng: random.Random, account: Account) -> None:
        """Balances over the past 60 days rising to today's: so the running average only grows as
        the events arrive in order, and the tier the platform settles on is the truth's."""
        days = sorted(rng.sample(range(1, 60), k=rng.randrange(1, 4)), reverse=True)
        final = account.balance
        values = [final]
        for _ in days[1:]:
            values.append((values[-1] * Decimal(rng.randrange(50, 100)) / 100).quantize(CENT))
        account.history = [(self.today - timedelta(days=d), v) for d, v in zip(days, reversed(values), strict=True)]
        if len(account.history) >= 2 and account.product.is_asset and rng.random() < 0.05:
            # The core system's end-of-day figure for an earlier day disagrees (a balance the
            # stream missed); being the authority, it wins for that day.
            day, value = account.history[0]
            account.snapshot = (day, value + Decimal(rng.randrange(1, 500)))

    def truth(self) -> GroundTruth:
        truths = []
        for c in self.customers():
            average = average_30d(c.accounts, self.today)
            truths.append(Truth(c.key, c.aum, band_of(c.aum), average, tier_of(average)))
        return GroundTruth(self.today, truths)

    # -- events ------------------------------------------------------------------------------------

    def events(self) -> Iterator[tuple[str, CloudEvent]]:
        """(topic, event) for the whole bank: FX rates first, then each customer's history."""
        rng = random.Random(self.seed + 1)
        self._sequence = 0
        for currency, rate in FX_RATES.items():
            data = FxRate(currency=currency, rate_to_cny=rate, as_of=self.now - timedelta(days=61))
            yield "bank.fx-rates.v1", self._event(data, source="treasury", time=self.now - timedelta(days=61))
        for customer in self.customers():
            yield from self._customer_events(rng, customer)

    def _event(self, data: BaseModel, *, source: str, time: datetime) -> CloudEvent:
        """An event with an id derived from the seed and its place in the history: the same seed
        tells the same history, ids included."""
        self._sequence += 1
        return build_event(data, source=source, time=time, id=str(uuid.uuid5(self._namespace, str(self._sequence))))

    def _at(self, day: date, hour: int = 12) -> datetime:
        return datetime.combine(day, time(hour), tzinfo=BUSINESS_ZONE).astimezone(UTC)

    def _customer_events(self, rng: random.Random, customer: Customer) -> Iterator[tuple[str, CloudEvent]]:
        styles = ["plain", "old15" if customer.born.year < 2000 else "plain", "lower", "spaced", "fullwidth"]
        for source, ref in customer.refs.items():
            style = "plain" if source == "core-deposits" else rng.choice(styles)
            data = CustomerUpserted(
                customer_ref=ref,
                full_name=customer.name,
                id_type=IdType.RESIDENT_ID,
                id_number=written(customer.id_number, style),
                birth_date=customer.born,
                phone=f"13{rng.randrange(10**8, 10**9)}",
                branch_id=customer.branch,
                marketing_consent=customer.consent,
            )
            yield "bank.customers.v1", self._event(data, source=source, time=self.now - timedelta(days=61))
        for account in customer.accounts:
            ref = customer.refs[account.source]
            opened = AccountOpened(
                account_ref=account.ref,
                customer_ref=ref,
                product=account.product,
                currency=account.currency,
                opened_on=account.opened_on,
                maturity_date=account.maturity,
            )
            yield "bank.accounts.v1", self._event(opened, source=account.source, time=self._at(account.opened_on))
            for version, (day, value) in enumerate(account.history, start=1):
                balance = AccountBalance(
                    account_ref=account.ref,
                    customer_ref=ref,
                    balance=value,
                    currency=account.currency,
                    as_of=self._at(day),
                    version=version,
                )
                yield "bank.accounts.v1", self._event(balance, source=account.source, time=self._at(day))
            if account.snapshot is not None:
                day, value = account.snapshot
                snapshot = AccountSnapshot(
                    business_date=day,
                    account_ref=account.ref,
                    customer_ref=ref,
                    balance=value,
                    currency=account.currency,
                )
                yield "bank.accounts.v1", self._event(snapshot, source=account.source, time=self._at(day, 23))
        yield from self._activity(rng, customer)

    def _activity(self, rng: random.Random, customer: Customer) -> Iterator[tuple[str, CloudEvent]]:
        ref = customer.refs["core-deposits"]
        current = next(a for a in customer.accounts if a.product is Product.CURRENT and a.currency == "CNY")
        for _ in range(rng.randrange(0, 4)):
            electronic = rng.random() < ELECTRONIC_SHARE
            channel = (
                rng.choice([Channel.MOBILE, Channel.ONLINE])
                if electronic
                else rng.choice([Channel.BRANCH, Channel.ATM, Channel.POS])
            )
            posted = self.now - timedelta(days=rng.randrange(0, 90), minutes=rng.randrange(0, 1440))
            data = TransactionPosted(
                transaction_ref=f"X{self.seed}-{customer.number:07d}-{rng.randrange(10**6):06d}",
                account_ref=current.ref,
                customer_ref=ref,
                amount=Decimal(rng.randrange(10, 20_000)),
                direction=rng.choice([Direction.CREDIT, Direction.DEBIT]),
                currency="CNY",
                channel=channel,
                counterparty=Counterparty.EXTERNAL if rng.random() < 0.2 else Counterparty.INTERNAL,
                posted_at=posted,
            )
            yield "bank.transactions.v1", self._event(data, source="core-deposits", time=posted)
        if rng.random() < 0.1:
            kind = (
                InteractionKind.COMPLAINT
                if rng.random() < 0.2
                else rng.choice([InteractionKind.VISIT, InteractionKind.CALL, InteractionKind.SURVEY])
            )
            at = self.now - timedelta(days=rng.randrange(0, 120))
            interaction = InteractionRecorded(
                interaction_ref=f"I{self.seed}-{customer.number:07d}",
                customer_ref=ref,
                kind=kind,
                occurred_at=at,
                satisfaction=rng.randrange(1, 6) if kind is InteractionKind.SURVEY else None,
            )
            yield "bank.interactions.v1", self._event(interaction, source="core-deposits", time=at)
