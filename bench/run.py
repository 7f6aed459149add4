"""`make bench`: the synthetic bank replayed through a fresh embedded platform, measured against
the machine's own limit in the same run, with latency under load, gateway load and memory.

    python -m bench.run [--scale 1.0] [--seed 7] [--gateway-seconds 60]

Results are printed and appended to docs/benchmarks.md with the machine's details.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import httpx
from aiokafka import AIOKafkaConsumer

from bench.common import KEEP_HELP, embedded_platform, machine, percentile
from c360.ops import produce_all, total_lag
from c360.simulate import GroundTruth, SyntheticBank
from contracts import (
    BANK_ACCOUNTS,
    C360_TASKS,
    C360_TIERS,
    INBOUND_TOPICS,
    AccountBalance,
    AccountOpened,
    Product,
    build_event,
    parse_event,
)
from runtime.kafka import header, make_producer
from runtime.outbox import CORRELATION_HEADER

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "benchmarks.md"


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(pgdata: Path) -> float:
    """CPU time of the PostgreSQL server's backends and workers (the children of its postmaster)."""
    postmaster = Path(pgdata, "postmaster.pid").read_text().split()[0]
    used = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] == postmaster:
                used += cpu_seconds(int(stat.parent.name))
        except (OSError, IndexError):
            continue  # ended while we looked
    return used


def scrape(url: str) -> dict[str, float]:
    """Metric name (with labels) -> value, from a service's /metrics."""
    found: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def total(metrics: dict[str, float], name: str, **labels: str) -> float:
    return sum(
        v
        for k, v in metrics.items()
        if k.split("{", 1)[0] == name and all(f'{a}="{b}"' in k for a, b in labels.items())
    )


async def bare_consumer_rate(bootstrap: str, expected: int) -> float:
    """The limit (a): read and decode every inbound event, nothing else."""
    consumer = AIOKafkaConsumer(
        *INBOUND_TOPICS, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    count = 0
    started = time.perf_counter()
    try:
        while count < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    parse_event(record.value, topic=record.topic)
                    count += 1
    finally:
        await consumer.stop()
    return count / (time.perf_counter() - started)


async def upsert_rates(database_url: str, balances: Sequence[AccountBalance]) -> tuple[float, float]:
    """The limit (b): the best batched upsert of the balance rows profile keeps, and the naive
    one-transaction-per-row baseline, into a scratch table shaped like profile's accounts."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TEMP TABLE bench_accounts (source text, account_ref text, customer_ref text, balance numeric,"
            " version bigint, as_of timestamptz, PRIMARY KEY (source, account_ref))"
        )
        rows = [("core", b.account_ref, b.customer_ref, b.balance, b.version, b.as_of) for b in balances]
        upsert = (
            "INSERT INTO bench_accounts SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[],"
            " $5::bigint[], $6::timestamptz[]) ON CONFLICT (source, account_ref) DO UPDATE SET"
            " balance = excluded.balance, version = excluded.version, as_of = excluded.as_of"
            " WHERE bench_accounts.version < excluded.version"
        )
        started = time.perf_counter()
        for i in range(0, len(rows), 2000):
            chunk: dict[str, tuple[Any, ...]] = {}
            for row in rows[i : i + 2000]:  # folded: the newest version per account, as profile does
                if row[1] not in chunk or chunk[row[1]][4] < row[4]:
                    chunk[row[1]] = row
            columns = list(zip(*chunk.values(), strict=True))
            async with conn.transaction():
                await conn.execute(upsert, *[list(c) for c in columns])
        batched = len(rows) / (time.perf_counter() - started)
        await conn.execute("TRUNCATE bench_accounts")
        single = rows[: min(len(rows), 3000)]
        started = time.perf_counter()
        for row in single:
            async with conn.transaction():
                await conn.execute(upsert, *[[value] for value in row])
        naive = len(single) / (time.perf_counter() - started)
        return batched, naive
    finally:
        await conn.close()


def drained(bootstrap: str, timeout_s: float) -> float | None:
    """Seconds until the platform's consumer groups had committed everything: the first of two
    clear readings a second apart (a relay may still be publishing what the last batch wrote); None
    if the backlog outlasts `timeout_s`."""
    started = time.perf_counter()
    clear_since: float | None = None
    while time.perf_counter() - started < timeout_s:
        reading = time.perf_counter()
        if asyncio.run(total_lag(bootstrap)) != 0:
            clear_since = None
        elif clear_since is not None:
            return clear_since - started
        else:
            clear_since = reading
        time.sleep(1)
    return None


def settled(gateway: str, headers: dict[str, str], truth: GroundTruth) -> bool:
    """Whether the gateway's tier-distribution report equals the ground truth band by band; a
    report the gateway could not give (a busy platform, a timeout) is not settled yet."""
    try:
        answer = httpx.get(gateway + "/v1/reports/tier-distribution", headers=headers, timeout=30)
    except httpx.TimeoutException:
        return False
    if answer.status_code != 200:
        print(f"tier-distribution report: {answer.status_code} {answer.text[:200]}", flush=True)
        return False
    report = answer.json()
    expected = truth.bands()
    return report["customers"] == len(truth.customers) and [
        (b["customers"], Decimal(b["aum_cny"])) for b in report["bands"]
    ] == [(b["customers"], Decimal(str(b["aum_cny"]))) for b in expected]


#: wrk's script: a random one of the paths in the file `C360_WRK_PATHS` for each request, and the
#: figures `gateway_load` reads, on one line, when the run is done.
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("C360_WRK_PATHS")) do paths[#paths + 1] = line end
math.randomseed(1)
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("C360 %d %d %d %.0f %.0f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def gateway_load(gateway: str, headers: dict[str, str], paths: Sequence[str], seconds: float) -> dict[str, Any]:
    """32 connections, each asking for a random one of `paths` as soon as its last answer came,
    for `seconds`: with `wrk` (Debian's package) where it is on PATH, else a Python client. The
    load tool shares the two cores with the platform: wrk spends a fraction of what aiohttp
    does a request (docs/benchmarks.md), and httpx spent 3-4 ms where aiohttp spends well under one."""
    if shutil.which("wrk"):
        return wrk_load(gateway, headers, paths, seconds)
    return asyncio.run(python_load(gateway, headers, paths, seconds))


def wrk_load(gateway: str, headers: dict[str, str], paths: Sequence[str], seconds: float) -> dict[str, Any]:
    """`gateway_load` with wrk, one thread, 32 connections; an error is a non-2xx/3xx answer, a
    failed connection, read or write, or an answer later than 10 s."""
    with tempfile.TemporaryDirectory(prefix="c360-wrk-") as work:
        script, listed = Path(work) / "paths.lua", Path(work) / "paths.txt"
        script.write_text(WRK_SCRIPT)
        listed.write_text("\n".join(paths) + "\n")
        command = ["wrk", "-t1", "-c32", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script)]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        answer = subprocess.run(
            [*command, gateway],
            env={**os.environ, "C360_WRK_PATHS": str(listed)},
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
    line = next((x for x in answer.stdout.splitlines() if x.startswith("C360 ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures: {answer.stdout[-500:]} {answer.stderr[-500:]}")
    requests, duration_us, errors, p50_us, p99_us = (int(x) for x in line.split()[1:])
    return {
        "rps": requests / (duration_us / 1e6),
        "p50_ms": p50_us / 1000,
        "p99_ms": p99_us / 1000,
        "errors": errors,
        "requests": requests,
        "client": "wrk",
    }


async def python_load(gateway: str, headers: dict[str, str], paths: Sequence[str], seconds: float) -> dict[str, Any]:
    """`gateway_load` with 32 aiohttp clients in this process."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    rng = random.Random(1)

    async def worker(client: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with client.get(rng.choice(paths)) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    connector = aiohttp.TCPConnector(limit=32)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(gateway, headers=headers, connector=connector, timeout=timeout) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(32)))
        elapsed = time.perf_counter() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
        "requests": len(latencies),
        "client": "aiohttp",
    }


async def customer_ids(gateway: str, headers: dict[str, str], refs: Sequence[str]) -> list[str]:
    """The golden ids of the customers core-deposits knows as `refs`, asked of the gateway (the
    simulator's ground truth knows a customer by its core-deposits reference)."""
    async with aiohttp.ClientSession(gateway, headers=headers, connector=aiohttp.TCPConnector(limit=16)) as client:

        async def one(ref: str) -> str:
            async with client.get(f"/v1/customers/by-ref/core-deposits/{ref}") as response:
                response.raise_for_status()
                view = await response.json()
                return str(view["customer_id"])

        return list(await asyncio.gather(*(one(ref) for ref in refs)))


#: How long the latency run's reader lets the broker hold an empty fetch (see `latency_under_load`).
READER_FETCH_WAIT_MS = 10


async def latency_under_load(
    bootstrap: str, customers: Sequence[tuple[str, str]], probes: int, rate: int
) -> dict[str, list[float]]:
    """With `rate` balance events/s of background for existing customers, send `probes` new VIP
    customers (a balance held 40 days) one a second; the time from producing each to its
    `tier.changed` and its `task.created`, matched by the correlation id the chain carries."""
    producer = make_producer(bootstrap, client_id="bench-latency")
    # The reader's own fetch wait is part of what it measures: on an idle broker, a record
    # produced at a random moment reached a reader with aiokafka's default wait (500 ms) 6-197 ms
    # later, and with 10 ms 2-6 ms later (20 records each; docs/benchmarks.md).
    reader = AIOKafkaConsumer(
        C360_TIERS, C360_TASKS, bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=READER_FETCH_WAIT_MS
    )
    await producer.start()
    await reader.start()
    await reader.seek_to_end()
    sent: dict[str, float] = {}  # per probe, when it was produced
    probe_of: dict[str, str] = {}  # event id -> probe: the first event of each topic per probe counts
    arrived: dict[str, dict[str, float]] = {C360_TIERS: {}, C360_TASKS: {}}
    stop = asyncio.Event()

    async def background() -> None:
        version = 1_000
        while not stop.is_set():
            tick = time.perf_counter()
            for _ in range(rate // 10):
                ref, account = customers[version % len(customers)]
                version += 1
                data = AccountBalance(
                    account_ref=account,
                    customer_ref=ref,
                    balance=Decimal(1 + version % 7),  # pocket change: no tier moves
                    currency="CNY",
                    as_of=datetime.now(UTC),
                    version=version,
                )
                event = build_event(data, source="core-deposits")
                await producer.send(BANK_ACCOUNTS, value=event.to_bytes(), key=ref.encode())
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))

    async def read() -> None:
        while not stop.is_set():
            for records in (await reader.getmany(timeout_ms=100)).values():
                for record in records:
                    probe = probe_of.get(header(record.headers or (), CORRELATION_HEADER) or "")
                    if probe is not None and probe not in arrived[record.topic]:
                        arrived[record.topic][probe] = time.perf_counter()

    tasks = [asyncio.create_task(background()), asyncio.create_task(read())]
    try:
        await asyncio.sleep(3)  # let the background settle in
        for i in range(probes):
            ref = f"PROBE-{uuid.uuid4().hex[:10]}-{i}"
            now = datetime.now(UTC)
            opened = AccountOpened(
                account_ref=f"{ref}-T",
                customer_ref=ref,
                product=Product.TIME_DEPOSIT,
                currency="CNY",
                opened_on=(now - timedelta(days=60)).date(),
            )
            balance = AccountBalance(
                account_ref=f"{ref}-T",
                customer_ref=ref,
                balance=Decimal(500_000),
                currency="CNY",
                as_of=now - timedelta(days=40),
                version=1,
            )
            first, second = build_event(opened, source="core-deposits"), build_event(balance, source="core-deposits")
            started = time.perf_counter()
            sent[ref] = started
            probe_of[first.id] = probe_of[second.id] = ref
            for event in (first, second):
                await producer.send_and_wait(BANK_ACCOUNTS, value=event.to_bytes(), key=ref.encode())
            await asyncio.sleep(1)
        for _ in range(60):
            if len(arrived[C360_TASKS]) >= probes and len(arrived[C360_TIERS]) >= probes:
                break
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await reader.stop()
        await producer.stop()
    return {topic: [(at - sent[probe]) * 1000 for probe, at in found.items()] for topic, found in arrived.items()}


def measure(args: argparse.Namespace, report: Report) -> None:
    """Each benchmark in turn on one fresh platform, each line added to `report` as measured."""
    with embedded_platform("bench", keep=args.keep) as platform:
        bootstrap, database_url = platform.bootstrap, platform.database_url
        started = time.perf_counter()
        bank = SyntheticBank(seed=args.seed, scale=args.scale)
        truth = bank.truth()
        events = list(bank.events())
        report.add(
            f"- Synthetic bank: {len(truth.customers):,} customers, {len(events):,} events, "
            f"built with its ground truth in {time.perf_counter() - started:.1f} s."
        )
        started = time.perf_counter()
        asyncio.run(produce_all(bootstrap, events, client_id="bench"))
        report.add(f"- Produced to the broker at {len(events) / (time.perf_counter() - started):,.0f} events/s.")
        bare = asyncio.run(bare_consumer_rate(bootstrap, len(events)))
        balances = [AccountBalance.model_validate(e.data) for _, e in events if e.type == "bank.account.balance.v1"]
        batched, naive = asyncio.run(upsert_rates(database_url, balances))
        limit = min(bare, batched)
        report.add(f"- Limit (a), bare aiokafka consumer reading and decoding: {bare:,.0f} events/s.")
        report.add(
            f"- Limit (b), batched PostgreSQL upsert of balance rows: {batched:,.0f} rows/s "
            f"(naive, one transaction per row: {naive:,.0f} rows/s)."
        )

        processes = platform.services()
        postgres_cpu_before = postgres_cpu_seconds(platform.work / "pgdata")
        replay_started = time.perf_counter()
        processes.start()
        processes.wait_healthy(timeout_s=120)
        headers = platform.admin_headers("bench")
        gateway = processes.url("gateway")
        inbound = len(events)
        profile_done = scoring_done = None
        while time.perf_counter() - replay_started < args.timeout_s:
            metrics = scrape(processes.url("profile"))
            handled = sum(
                total(metrics, name, group="c360-profile")
                for name in (
                    "c360_events_consumed_total",
                    "c360_events_duplicate_total",
                    "c360_events_dead_lettered_total",
                )
            )
            if profile_done is None and handled >= inbound:
                profile_done = time.perf_counter() - replay_started
            if profile_done is not None and settled(gateway, headers, truth):
                scoring_done = time.perf_counter() - replay_started
                break
            time.sleep(1)
        if profile_done is None or scoring_done is None:
            report.add(f"- Replay did not settle within {args.timeout_s:.0f} s.")
        else:
            rate = inbound / profile_done
            report.add(
                f"- Replay: profile applied all {inbound:,} inbound events in {profile_done:.1f} s "
                f"(**{rate:,.0f} events/s**, {rate / limit:.0%} of min(a, b)); every tier settled and the "
                f"tier-distribution report equal to the ground truth band by band after {scoring_done:.1f} s."
            )
        # Scoring and engagement may still be working the replay off once the report is exact
        # (the report needs only scoring's tiers): wait for every consumer group, so the CPU below
        # is the whole replay's and the latency run starts on a platform that has caught up.
        caught_up = drained(bootstrap, timeout_s=args.timeout_s)
        replay_s = time.perf_counter() - replay_started
        report.add(
            f"- Every consumer group (profile, scoring, engagement) had caught up with the replay after "
            f"{replay_s:.1f} s ({inbound / replay_s:,.0f} inbound events/s through the whole chain)."
            if caught_up is not None
            else f"- The consumer groups had not caught up with the replay within {args.timeout_s:.0f} s more."
        )
        used = {name: cpu_seconds(process.pid) for name, process in processes.processes.items()}
        used["PostgreSQL"] = postgres_cpu_seconds(platform.work / "pgdata") - postgres_cpu_before
        report.add(
            f"- CPU used during the replay ({replay_s:.0f} s, {os.cpu_count()} cores): "
            + ", ".join(f"{n} {s:.1f} s" for n, s in used.items())
            + f"; {sum(used.values()) / len(events) * 1000:.2f} ms of CPU per inbound event in all."
        )
        memory = {name: peak_rss_mib(process.pid) for name, process in processes.processes.items()}
        report.add("- Peak resident memory: " + ", ".join(f"{n} {m:,.0f} MiB" for n, m in memory.items()) + ".")

        current = [
            (c.key, a.ref)
            for c in bank.customers()
            for a in c.accounts
            if a.product is Product.CURRENT and a.currency == "CNY"
        ]
        latency = asyncio.run(latency_under_load(bootstrap, current, args.probes, args.background_rate))
        for topic, label in ((C360_TIERS, "tier.changed"), (C360_TASKS, "task.created")):
            values = latency[topic]
            lead = (
                f"- Latency from a VIP balance event to its `{label}` with {args.background_rate:,} events/s"
                " of background:"
            )
            if not values:
                report.add(f"{lead} none of {args.probes} probes arrived while the probe run lasted (about a minute).")
                continue
            report.add(
                f"{lead} {len(values)} of {args.probes} probes, p50 {percentile(values, 50):,.0f} ms, "
                f"p95 {percentile(values, 95):,.0f} ms, p99 {percentile(values, 99):,.0f} ms."
            )
        drain = drained(bootstrap, timeout_s=args.timeout_s)
        report.add(
            f"- Backlog left by the background drained {drain:.0f} s after the latency run ended."
            if drain is not None
            else f"- Backlog left by the background not drained within {args.timeout_s:.0f} s: "
            "the gateway load ran on a busy platform."
        )
        refs = random.Random(args.seed).sample(
            [t.customer_key for t in truth.customers], min(2000, len(truth.customers))
        )
        ids = asyncio.run(customer_ids(gateway, headers, refs))
        by_id = gateway_load(gateway, headers, [f"/v1/customers/{i}" for i in ids], args.gateway_seconds)
        by_ref = gateway_load(gateway, headers, [f"/v1/customers/by-ref/core-deposits/{r}" for r in refs], 20)
        for route, load, seconds in (
            ("/v1/customers/{customer_id}", by_id, args.gateway_seconds),
            ("/v1/customers/by-ref/core-deposits/{ref}", by_ref, 20),
        ):
            report.add(
                f"- Gateway, `GET {route}` for {len(refs):,} random customers at concurrency 32 for "
                f"{seconds:.0f} s: {load['rps']:,.0f} requests/s, p50 {load['p50_ms']:.1f} ms, "
                f"p99 {load['p99_ms']:.1f} ms, {int(load['errors'])} errors of {int(load['requests']):,} "
                f"({load['client']})."
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gateway-seconds", type=float, default=60)
    parser.add_argument("--timeout-s", type=float, default=7200, help="give up on a replay not settled by then")
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--background-rate", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help=KEEP_HELP)
    args = parser.parse_args(argv)
    report = Report()
    report.add(f"\n## Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, scale {args.scale}\n")
    report.add(f"Machine: {machine()}.\n")

    try:
        measure(args, report)
    except BaseException as exc:
        report.add(f"- The run stopped early ({type(exc).__name__}: {exc}); the lines above are what it measured.")
        raise
    finally:
        with RESULTS.open("a") as out:
            out.write("\n".join(report.lines) + "\n")
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
