"""`make soak`: the synthetic bank at a steady rate through a fresh embedded platform, with the
gateway under concurrent reads and faults injected on a schedule; afterwards the end state is
checked against the ground truth, and the figures are appended to docs/reliability.md.

    python -m bench.soak [--minutes 10] [--rate 150] [--readers 8] [--seed 11]

Faults, spread over the run: each consumer service killed (SIGKILL) and restarted once, and
PostgreSQL stopped for 5 s once. Every 5 s the consumer lag, resident memory and gateway
answers are sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import psutil
from aiokafka import AIOKafkaConsumer

from bench.common import KEEP_HELP, embedded_platform, machine, percentile
from c360.embedded import EmbeddedPostgres
from c360.ops import total_lag
from c360.platform import SERVICES, ServiceProcesses
from c360.simulate import SyntheticBank
from contracts import C360_TASKS, C360_TIERS, CloudEvent, parse_event
from runtime.kafka import make_producer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "reliability.md"
CONSUMERS = ("profile", "scoring", "engagement")


@dataclass
class Soak:
    """What the run saw."""

    lag: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, total lag)
    memory: dict[str, list[float]] = field(default_factory=dict)  # service -> RSS MiB samples
    faults: list[str] = field(default_factory=list)
    recoveries: list[tuple[str, float]] = field(default_factory=list)
    reads: Counter[int] = field(default_factory=Counter)
    read_seconds: list[float] = field(default_factory=list)


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(processes: ServiceProcesses, names: Sequence[str], timeout_s: float = 120) -> float:
    started = time.monotonic()
    while not all(ready(processes.url(n)) for n in names):
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{names} not ready after {timeout_s}s")
        time.sleep(0.2)
    return time.monotonic() - started


def rss_mib(process: Any) -> float:
    try:
        return float(psutil.Process(process.pid).memory_info().rss) / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


async def produce_steadily(bootstrap: str, events: Sequence[tuple[str, CloudEvent]], rate: float) -> None:
    producer = make_producer(bootstrap, client_id="soak")
    await producer.start()
    started = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    try:
        for index, (topic, event) in enumerate(events):
            due = started + index / rate
            if due > time.monotonic():
                await asyncio.gather(*pending)
                pending.clear()
                await asyncio.sleep(due - time.monotonic())
            pending.append(await producer.send(topic, value=event.to_bytes(), key=(event.subject or "").encode()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def read_gateway(
    gateway: str, headers: dict[str, str], refs: Sequence[str], stop: asyncio.Event, soak: Soak
) -> None:
    rng = random.Random(3)
    async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = await client.get(f"/v1/customers/by-ref/core-deposits/{rng.choice(refs)}")
                soak.reads[response.status_code] += 1
            except httpx.HTTPError:
                soak.reads[0] += 1
            soak.read_seconds.append(time.perf_counter() - started)


async def sample(processes: ServiceProcesses, bootstrap: str, stop: asyncio.Event, soak: Soak, began: float) -> None:
    while not stop.is_set():
        try:
            soak.lag.append((time.monotonic() - began, await total_lag(bootstrap)))
        except Exception as exc:  # the broker may be busy or a group rebalancing: sample next time
            print(f"lag sample skipped: {exc!r}", flush=True)
        for name in (*CONSUMERS, "gateway"):
            if name in processes.processes:
                soak.memory.setdefault(name, []).append(rss_mib(processes.processes[name]))
        await asyncio.sleep(5)


async def inject(
    processes: ServiceProcesses, postgres: EmbeddedPostgres, minutes: float, stop: asyncio.Event, soak: Soak
) -> None:
    """A SIGKILL of each consumer and a 5 s database outage, spread evenly over the run."""
    plan = [*CONSUMERS, "database"]
    gap = minutes * 60 / (len(plan) + 1)
    for what in plan:
        await asyncio.sleep(gap)
        if stop.is_set():
            return
        if what == "database":
            server: Any = postgres._server
            pid = postgres.pid
            assert pid is not None
            os.kill(pid, signal.SIGINT)
            await asyncio.sleep(5)
            await asyncio.to_thread(server.ensure_postgres_running)
            soak.faults.append("PostgreSQL stopped for 5 s")
            began = time.monotonic()
            await asyncio.to_thread(wait_ready, processes, [s.name for s in SERVICES])
            soak.recoveries.append(("database", time.monotonic() - began))
        else:
            processes.stop((what,), signal.SIGKILL)
            soak.faults.append(f"{what} killed (SIGKILL) and restarted")
            began = time.monotonic()
            processes.start_one(what)
            await asyncio.to_thread(wait_ready, processes, [what])
            soak.recoveries.append((what, time.monotonic() - began))


async def end_state(database_url: str, bank: SyntheticBank, ids: list[str]) -> tuple[int, int, int]:
    """(customers differing from the ground truth, events profile never recorded, of all events)."""
    truth = {t.customer_key: (t.aum_cny, t.aum_avg_30d_cny, t.tier) for t in bank.truth().customers}
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT s.customer_ref, c.aum_cny, c.aum_avg_30d_cny, t.tier FROM profile.source_records s"
            " JOIN profile.customers c ON c.customer_id = s.customer_id"
            " LEFT JOIN scoring.customer_tiers t ON t.customer_id = c.customer_id"
            " WHERE s.source = 'core-deposits' AND c.merged_into IS NULL AND s.customer_ref = ANY($1)",
            list(truth),
        )
        found = {r["customer_ref"]: (r["aum_cny"], r["aum_avg_30d_cny"], r["tier"]) for r in rows}
        seen = await conn.fetchval("SELECT count(*) FROM profile.processed_events WHERE event_id = ANY($1)", ids)
    finally:
        await conn.close()
    wrong = sum(1 for key, want in truth.items() if found.get(key) != want)
    return wrong, len(ids) - int(seen), len(ids)


async def outbox_copies(bootstrap: str, database_url: str) -> tuple[int, int, int]:
    """(tier changes and tasks stored, published copies the idempotent reader skipped, stored ones
    it never saw) over the whole run."""
    conn = await asyncpg.connect(database_url)
    try:
        stored: set[str] = set()
        for schema, topic in (("scoring", C360_TIERS), ("engagement", C360_TASKS)):
            rows = await conn.fetch(
                f"SELECT convert_from(payload, 'UTF8')::json->>'id' AS id FROM {schema}.outbox WHERE topic = $1", topic
            )
            stored |= {r["id"] for r in rows}
    finally:
        await conn.close()
    reader = AIOKafkaConsumer(
        C360_TIERS, C360_TASKS, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await reader.start()
    copies: Counter[str] = Counter()
    try:
        quiet = 0
        while quiet < 4:
            batch = await reader.getmany(timeout_ms=500)
            quiet = 0 if batch else quiet + 1
            for records in batch.values():
                for record in records:
                    copies[parse_event(record.value, topic=record.topic).envelope.id] += 1
    finally:
        await reader.stop()
    return len(stored), sum(n - 1 for n in copies.values()), len(stored - set(copies))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=150, help="inbound events per second")
    parser.add_argument("--readers", type=int, default=8, help="concurrent gateway readers")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help=KEEP_HELP)
    args = parser.parse_args(argv)

    soak = Soak()
    lines = [
        f"\n## Soak of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.minutes:g} minutes at {args.rate:g} events/s\n"
    ]
    lines.append(f"Machine: {machine()}.\n")
    with embedded_platform("soak", keep=args.keep) as platform:
        bootstrap, database_url, postgres = platform.bootstrap, platform.database_url, platform.postgres
        customers = max(10, round(args.minutes * 60 * args.rate / 8.5))
        bank = SyntheticBank(seed=args.seed, scale=customers / 458_067)
        events = list(bank.events())
        processes = platform.services()
        processes.start()
        processes.wait_healthy(timeout_s=180)
        headers = platform.admin_headers("soak")
        refs = [c.key for c in bank.customers()]
        rate = len(events) / (args.minutes * 60)

        async def run() -> float:
            stop = asyncio.Event()
            began = time.monotonic()
            background = [
                asyncio.create_task(sample(processes, bootstrap, stop, soak, began)),
                *(
                    asyncio.create_task(read_gateway(processes.url("gateway"), headers, refs, stop, soak))
                    for _ in range(args.readers)
                ),
            ]
            faults = asyncio.create_task(inject(processes, postgres, args.minutes, stop, soak))
            await produce_steadily(bootstrap, events, rate)
            await faults
            produced = time.monotonic()
            ids = [e.id for _, e in events]
            while True:  # drain: the end state exact and no lag, or give up after 15 minutes
                wrong, missing, _ = await end_state(database_url, bank, ids)
                if not wrong and not missing and await total_lag(bootstrap) == 0:
                    break
                if time.monotonic() - produced > 900:
                    break
                await asyncio.sleep(2)
            stop.set()
            await asyncio.gather(*background, return_exceptions=True)
            return time.monotonic() - produced

        drained = asyncio.run(run())
        wrong, missing, total_events = asyncio.run(end_state(database_url, bank, [e.id for _, e in events]))
        stored, duplicates, lost = asyncio.run(outbox_copies(bootstrap, database_url))
        final_lag = asyncio.run(total_lag(bootstrap))
        exited = processes.exited()
    peak_lag = max((lag for _, lag in soak.lag), default=0)
    reads = sum(soak.reads.values())
    errors = sum(n for status, n in soak.reads.items() if status == 0 or status >= 500)
    lines += [
        f"- Stream: {total_events:,} inbound events of {len(bank.customers()):,} customers at {rate:,.0f} events/s for "
        f"{args.minutes:g} min; {args.readers} concurrent gateway readers.",
        f"- Faults injected: {len(soak.faults)} — " + "; ".join(soak.faults) + ".",
        "- Recovery (fault until ready again): "
        + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in soak.recoveries)
        + ".",
        f"- End state: {wrong} of {len(bank.customers()):,} customers differ from the ground truth (AUM, 30-day "
        f"average, tier); {missing} of {total_events:,} events never applied (losses); final consumer lag {final_lag}; "
        f"services exited: {exited or 'none'}; drained {drained:.0f} s after the last event was produced.",
        f"- Outbox (tier changes and tasks): {stored:,} stored, {lost} never published (losses), "
        f"{duplicates} duplicate copies on the topics, skipped by the idempotent reader.",
        f"- Peak consumer lag (all groups): {peak_lag:,} messages.",
        "- Resident memory, first and last sample (peak): "
        + ", ".join(
            f"{name} {values[0]:,.0f} → {values[-1]:,.0f} MiB ({max(values):,.0f})"
            for name, values in soak.memory.items()
            if values
        )
        + ".",
        f"- Gateway reads: {reads:,} ({dict(sorted(soak.reads.items()))} by status; {errors} errors), "
        f"p50 {percentile(soak.read_seconds, 50) * 1000:,.0f} ms, "
        f"p99 {percentile(soak.read_seconds, 99) * 1000:,.0f} ms.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with RESULTS.open("a") as out:
        out.write(text)
    print(f"appended to {RESULTS}")
    return 0 if not wrong and not missing and not lost and not final_lag and not exited else 1


if __name__ == "__main__":
    sys.exit(main())
