"""What a fault test sends and what it must end with: a synthetic bank of its own seed, the state
its ground truth demands, the state the platform holds (read from each service's tables), and an
idempotent reader of the outbound topics.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from aiokafka import AIOKafkaConsumer, TopicPartition

from c360.ops import produce_all
from c360.simulate import SyntheticBank
from contracts import C360_TASKS, C360_TIERS, CloudEvent, parse_event
from tests.faults.conftest import FaultPlatform

Events = list[tuple[str, CloudEvent]]


@dataclass(frozen=True)
class CustomerState:
    """One customer as the platform must end: money from profile, tier from scoring and engagement,
    and each fact-like record (source record, transaction, interaction, reconciliation) exactly once."""

    aum_cny: Decimal
    aum_avg_30d_cny: Decimal
    tier: str | None
    engagement_tier: str | None
    source_records: frozenset[tuple[str, str]]
    transactions: int
    interactions: int


@dataclass(frozen=True)
class BankState:
    customers: dict[str, CustomerState]  # by core-deposits ref
    balances: dict[tuple[str, str], Decimal]  # by (source, account_ref)
    reconciliation_differences: Counter[tuple[str, str]]  # by (source, account_ref)

    def differences(self, other: BankState) -> list[str]:
        wrong = [
            f"{key}: found {self.customers.get(key)}, expected {want}"
            for key, want in other.customers.items()
            if self.customers.get(key) != want
        ]
        wrong += [
            f"balance {key}: found {self.balances.get(key)}, expected {want}"
            for key, want in other.balances.items()
            if self.balances.get(key) != want
        ]
        if self.reconciliation_differences != other.reconciliation_differences:
            found, want = self.reconciliation_differences, other.reconciliation_differences
            wrong.append(f"reconciliation differences: extra {found - want}, missing {want - found}")
        return wrong


def bank_of(seed: int, customers: int = 230) -> SyntheticBank:
    """A bank of about `customers` customers (about 8.5 events each) with its own refs and ids."""
    return SyntheticBank(seed=seed, scale=customers / 458_067)


def expected_state(bank: SyntheticBank, events: Events) -> BankState:
    """What the ground truth says, plus the counts of facts the stream carries per customer."""
    owner = {ref: c.key for c in bank.customers() for ref in c.refs.values()}
    transactions: Counter[str] = Counter()
    interactions: Counter[str] = Counter()
    for _, event in events:
        if event.type == "bank.transaction.posted.v1":
            transactions[owner[event.data["customer_ref"]]] += 1
        elif event.type == "bank.interaction.recorded.v1":
            interactions[owner[event.data["customer_ref"]]] += 1
    truth = {t.customer_key: t for t in bank.truth().customers}
    customers = {
        c.key: CustomerState(
            aum_cny=truth[c.key].aum_cny,
            aum_avg_30d_cny=truth[c.key].aum_avg_30d_cny,
            tier=truth[c.key].tier,
            engagement_tier=truth[c.key].tier,
            source_records=frozenset(c.refs.items()),
            transactions=transactions[c.key],
            interactions=interactions[c.key],
        )
        for c in bank.customers()
    }
    balances = {(a.source, a.ref): a.balance for c in bank.customers() for a in c.accounts}
    # Each disagreeing end-of-day snapshot is reported once.
    differences = Counter((a.source, a.ref) for c in bank.customers() for a in c.accounts if a.snapshot is not None)
    return BankState(customers, balances, differences)


async def golden_ids(platform: FaultPlatform, bank: SyntheticBank) -> dict[str, str]:
    """Core-deposits ref -> the surviving golden customer id."""
    keys = [c.key for c in bank.customers()]
    rows = await platform.fetch(
        "SELECT s.customer_ref, s.customer_id, c.merged_into FROM profile.source_records s"
        " JOIN profile.customers c USING (customer_id)"
        " WHERE s.source = 'core-deposits' AND s.customer_ref = ANY($1)",
        keys,
    )
    found = {r["customer_ref"]: r["merged_into"] or r["customer_id"] for r in rows}
    merged = {
        r["customer_id"]: r["merged_into"]
        for r in await platform.fetch(
            "SELECT customer_id, merged_into FROM profile.customers WHERE merged_into IS NOT NULL"
        )
    }
    for key, customer_id in found.items():
        while customer_id in merged:
            customer_id = merged[customer_id]
        found[key] = customer_id
    return found


async def observed_state(platform: FaultPlatform, bank: SyntheticBank) -> BankState:
    """The state the platform holds now for `bank`'s customers, read from the services' tables."""
    ids = await golden_ids(platform, bank)
    refs = [ref for c in bank.customers() for ref in c.refs.values()]
    golden = list(ids.values())

    def by_id(rows: Iterable[dict[str, object]], column: str) -> dict[object, object]:
        return {r["customer_id"]: r[column] for r in rows}

    money = {
        r["customer_id"]: (r["aum_cny"], r["aum_avg_30d_cny"])
        for r in await platform.fetch(
            "SELECT customer_id, aum_cny, aum_avg_30d_cny FROM profile.customers WHERE customer_id = ANY($1)", golden
        )
    }
    tiers = by_id(
        await platform.fetch(
            "SELECT customer_id, tier FROM scoring.customer_tiers WHERE customer_id = ANY($1)", golden
        ),
        "tier",
    )
    engaged = by_id(
        await platform.fetch("SELECT customer_id, tier FROM engagement.customers WHERE customer_id = ANY($1)", golden),
        "tier",
    )
    records: dict[str, set[tuple[str, str]]] = {}
    for r in await platform.fetch(
        "SELECT source, customer_ref, customer_id FROM profile.source_records WHERE customer_ref = ANY($1)", refs
    ):
        records.setdefault(r["customer_id"], set()).add((r["source"], r["customer_ref"]))

    async def counted(table: str) -> Counter[str]:
        rows = await platform.fetch(
            f"SELECT customer_id, count(*) AS n FROM profile.{table} WHERE customer_id = ANY($1) GROUP BY customer_id",
            golden,
        )
        return Counter({r["customer_id"]: r["n"] for r in rows})

    transactions = await counted("transactions")
    interactions = await counted("interactions")
    customers = {}
    for key, customer_id in ids.items():
        aum, average = money.get(customer_id, (None, None))
        customers[key] = CustomerState(
            aum_cny=aum,  # type: ignore[arg-type]
            aum_avg_30d_cny=average,  # type: ignore[arg-type]
            tier=tiers.get(customer_id),  # type: ignore[arg-type]
            engagement_tier=engaged.get(customer_id),  # type: ignore[arg-type]
            source_records=frozenset(records.get(customer_id, set())),
            transactions=transactions[customer_id],
            interactions=interactions[customer_id],
        )
    accounts = [a.ref for c in bank.customers() for a in c.accounts]
    balances = {
        (r["source"], r["account_ref"]): r["balance"]
        for r in await platform.fetch(
            "SELECT source, account_ref, balance FROM profile.accounts WHERE account_ref = ANY($1)", accounts
        )
    }
    differences = Counter(
        (r["source"], r["account_ref"])
        for r in await platform.fetch(
            "SELECT source, account_ref FROM profile.reconciliation_differences WHERE account_ref = ANY($1)", accounts
        )
    )
    return BankState(customers, balances, differences)


async def settle(
    platform: FaultPlatform,
    bank: SyntheticBank,
    expected: BankState,
    timeout_s: float = 150,
    events: Events | None = None,
) -> None:
    """Wait until the platform holds exactly `expected` for `bank`, and profile has recorded every
    one of `events` (by default the bank's whole stream) as processed; fail with the differences."""
    ids = [e.id for _, e in (events if events is not None else bank.events())]
    deadline = time.monotonic() + timeout_s
    while True:
        found = await observed_state(platform, bank)
        wrong = found.differences(expected)
        [seen] = await platform.fetch(
            "SELECT count(*) AS n FROM profile.processed_events WHERE event_id = ANY($1)", ids
        )
        if seen["n"] != len(set(ids)):
            wrong.append(f"profile processed {seen['n']} of the stream's {len(set(ids))} events")
        wrong = await stranded(platform) + wrong
        if not wrong:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(wrong)} differences after {timeout_s:.0f}s (services exited: {platform.processes.exited()}): "
                + "; ".join(wrong[:8])
            )
        await asyncio.sleep(1)


async def stranded(platform: FaultPlatform) -> list[str]:
    """Rows still held by a merged-away customer: a merge must move everything to its survivor."""
    found = []
    for table in ("source_records", "accounts", "transactions", "interactions"):
        [row] = await platform.fetch(
            f"SELECT count(*) AS n FROM profile.{table} t JOIN profile.customers c USING (customer_id)"
            " WHERE c.merged_into IS NOT NULL"
        )
        if row["n"]:
            found.append(f"{row['n']} {table} rows belong to a merged-away customer")
    return found


async def produce(platform: FaultPlatform, events: Events) -> None:
    await produce_all(platform.bootstrap, events, client_id="fault-test")


async def processed(platform: FaultPlatform, service: str) -> int:
    """How many events `service` has recorded as processed so far."""
    [row] = await platform.fetch(f"SELECT count(*) AS n FROM {service}.processed_events")
    return int(row["n"])


async def wait_processed(platform: FaultPlatform, service: str, at_least: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    while (count := await processed(platform, service)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"{service} processed only {count} of {at_least} events in {timeout_s}s")
        await asyncio.sleep(0.05)
    return count


async def outboxes_drained(platform: FaultPlatform, timeout_s: float = 60) -> None:
    """Wait until every service's relay has published every outbox row."""
    query = " UNION ALL ".join(
        f"SELECT count(*) AS n FROM {s}.outbox WHERE published_at IS NULL" for s in ("profile", "scoring", "engagement")
    )
    deadline = time.monotonic() + timeout_s
    while sum(r["n"] for r in await platform.fetch(query)):
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox rows still unpublished after {timeout_s}s")
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Delivered:
    """What an idempotent reader of one outbound topic saw for a set of customers."""

    unique: dict[str, CloudEvent]  # by event id
    copies: int  # messages read, duplicates included

    @property
    def duplicates(self) -> int:
        return self.copies - len(self.unique)


async def read_outbound(platform: FaultPlatform, topic: str, customer_ids: set[str]) -> Delivered:
    """Every event on `topic` for `customer_ids`, from the beginning until the topic is read to
    its end and quiet (the broker may report an end offset a moment behind a fresh write)."""
    reader = AIOKafkaConsumer(bootstrap_servers=platform.bootstrap, group_id=None, enable_auto_commit=False)
    await reader.start()
    unique: dict[str, CloudEvent] = {}
    copies = 0
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or range(6))]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 60
        quiet = 0
        while quiet < 3:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            batch = await reader.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if (record.key or b"").decode() in customer_ids:
                        event = parse_event(record.value, topic=topic).cloud_event()
                        unique.setdefault(event.id, event)
                        copies += 1
            ends = await reader.end_offsets(partitions)
            behind = [tp for tp in partitions if await reader.position(tp) < ends[tp]]
            quiet = 0 if batch or behind else quiet + 1
    finally:
        await reader.stop()
    return Delivered(unique, copies)


async def outbox_delivered_exactly_once(
    platform: FaultPlatform, bank: SyntheticBank, since: datetime | None = None
) -> dict[str, int]:
    """Tier changes and tasks: what an idempotent reader of the topics sees equals what scoring
    and engagement hold, one for one: nothing the outbox had was lost, nothing counted twice.
    With `since`, only what was made from then on (a broker that lost its topics holds nothing
    older). Returns the duplicate copies the reader skipped per topic."""
    start = since or datetime.min.replace(tzinfo=UTC)
    await outboxes_drained(platform)
    ids = set((await golden_ids(platform, bank)).values())
    tiers = await read_outbound(platform, C360_TIERS, ids)
    published_changes = Counter(
        (e.data["customer_id"], e.data["from_tier"], e.data["to_tier"])
        for e in tiers.unique.values()
        if e.time >= start
    )
    stored_changes = Counter(
        (r["customer_id"], r["from_tier"], r["to_tier"])
        for r in await platform.fetch(
            "SELECT customer_id, from_tier, to_tier FROM scoring.tier_changes"
            " WHERE customer_id = ANY($1) AND effective_at >= $2",
            list(ids),
            start,
        )
    )
    assert published_changes == stored_changes, (published_changes - stored_changes, stored_changes - published_changes)
    assert stored_changes, "the bank made no tier changes at all: the check above proved nothing"

    tasks = await read_outbound(platform, C360_TASKS, ids)
    created = Counter(
        e.data["task_id"] for e in tasks.unique.values() if e.type == "c360.task.created.v1" and e.time >= start
    )
    stored_tasks = Counter(
        r["task_id"]
        for r in await platform.fetch(
            "SELECT task_id FROM engagement.tasks WHERE customer_id = ANY($1) AND created_at >= $2", list(ids), start
        )
    )
    assert created == stored_tasks, (created - stored_tasks, stored_tasks - created)
    assert stored_tasks, "the bank made no tasks at all: the check above proved nothing"
    return {C360_TIERS: tiers.duplicates, C360_TASKS: tasks.duplicates}
