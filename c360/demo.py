"""A small synthetic bank for `c360 up --demo`: customers, accounts and balances, and a roster of RMs.

Deterministic from a seed; its AUM mix follows the branch in DOMAIN.md (about 88% of customers
under 50,000 CNY, 10% up to 200,000, 2% VIP and above).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx

from contracts import (
    AccountBalance,
    AccountOpened,
    CloudEvent,
    CustomerUpserted,
    IdType,
    Product,
    build_event,
)
from runtime.kafka import make_producer

SOURCE = "core-deposits"
BRANCHES = [f"BR{n:02d}" for n in range(1, 21)]
SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu"]
GIVEN = ["Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jun", "Hui"]


def _aum(rng: random.Random) -> Decimal:
    band = rng.random()
    if band < 0.882:
        value = rng.uniform(100, 50_000)
    elif band < 0.982:
        value = rng.uniform(50_000, 200_000)
    else:
        value = rng.uniform(200_000, 3_000_000)
    return Decimal(str(round(value, 2)))


def demo_events(customers: int, seed: int, now: datetime | None = None) -> Iterator[tuple[str, CloudEvent]]:
    """(topic, event) pairs for `customers` customers, each with one to three accounts."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    for n in range(1, customers + 1):
        ref = f"DEMO-{n:06d}"
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 50))
        customer = CustomerUpserted(
            customer_ref=ref,
            full_name=f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}",
            id_type=IdType.RESIDENT_ID,
            id_number=f"11010{rng.randrange(10**12, 10**13)}",
            birth_date=birth,
            phone=f"13{rng.randrange(10**8, 10**9)}",
            branch_id=rng.choice(BRANCHES),
            marketing_consent=rng.random() < 0.7,
        )
        yield "bank.customers.v1", build_event(customer, source=SOURCE, time=now)
        total = _aum(rng)
        products = [
            Product.CURRENT,
            *rng.sample([Product.TIME_DEPOSIT, Product.WEALTH_PRODUCT, Product.FUND], k=rng.randrange(0, 3)),
        ]
        shares = [Decimal(rng.randrange(1, 10)) for _ in products]
        remaining = total
        for index, (product, share) in enumerate(zip(products, shares, strict=True)):
            account_ref = f"{ref}-A{index + 1}"
            balance = (
                remaining if index == len(products) - 1 else (total * share / sum(shares)).quantize(Decimal("0.01"))
            )
            remaining -= balance
            opened = AccountOpened(
                account_ref=account_ref,
                customer_ref=ref,
                product=product,
                currency="CNY",
                opened_on=now.date() - timedelta(days=rng.randrange(61, 3650)),
            )
            yield "bank.accounts.v1", build_event(opened, source=SOURCE, time=now)
            # Held since a day in the last two months, so the 30-day average AUM (what tiers are
            # decided on) is the balance itself, as for a customer the bank has had for a while.
            held_since = now - timedelta(days=rng.randrange(31, 61))
            balance_event = AccountBalance(
                account_ref=account_ref, customer_ref=ref, balance=balance, currency="CNY", as_of=held_since, version=1
            )
            yield "bank.accounts.v1", build_event(balance_event, source=SOURCE, time=now)


async def stream_demo_bank(bootstrap_servers: str, customers: int, seed: int = 7) -> int:
    """Produce the demo bank to Kafka, keyed by customer_ref; returns the number of events."""
    producer = make_producer(bootstrap_servers, client_id="c360-demo")
    await producer.start()
    count = 0
    try:
        pending = []
        for topic, event in demo_events(customers, seed):
            key = (event.subject or "").encode()
            pending.append(await producer.send(topic, value=event.to_bytes(), key=key))
            count += 1
        for delivery in pending:
            await delivery
    finally:
        await producer.stop()
    return count


# Per branch: the RM grades the premium tiers need, and how many customers each RM serves.
DEMO_GRADES = (
    ("W1", "wealth_manager", 150),
    ("W2", "wealth_manager", 150),
    ("S1", "senior_wealth_manager", 80),
    ("P1", "private_banker", 40),
)


def demo_roster() -> list[tuple[str, dict[str, object]]]:
    """(rm_id, manager) for every demo branch, such as `RM-BR01-W1`."""
    return [
        (
            f"RM-{branch}-{code}",
            {"name": f"{code} of {branch}", "grade": grade, "branch_id": branch, "capacity": capacity},
        )
        for branch in BRANCHES
        for code, grade, capacity in DEMO_GRADES
    ]


def seed_demo_roster(engagement_url: str) -> int:
    """Put the demo roster through the engagement service's API; returns the number of RMs."""
    roster = demo_roster()
    with httpx.Client(base_url=engagement_url, timeout=10) as client:
        for rm_id, manager in roster:
            client.put(f"/internal/managers/{rm_id}", json=manager).raise_for_status()
    return len(roster)
