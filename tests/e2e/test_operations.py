"""What an SRE relies on, against the running platform: metrics that move, a correlation id that
follows an event through every consumer's logs, dead letters replayed after a fix, consumer lag."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from c360.ops import consumer_lag, read_dead_letters, replay_dead_letters
from contracts import BANK_ACCOUNTS, BANK_CUSTOMERS, DLQ_REASON_HEADER, DLQ_TOPIC_HEADER, dlq_topic
from runtime.kafka import make_producer
from tests.builders import account_balance, account_opened, customer_upserted, unique_ref
from tests.e2e.conftest import Platform
from tests.e2e.flows import poll, produce

pytestmark = pytest.mark.e2e


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(url: str) -> str:
    # A request first, so the HTTP metrics have one to count; it answers with its correlation id.
    assert httpx.get(url + "/healthz", timeout=5).headers["X-Correlation-Id"]
    return httpx.get(url + "/metrics", timeout=5).text


def by_ref(platform: Platform, ref: str) -> httpx.Response:
    return httpx.get(f"{platform.processes.url('profile')}/internal/customers/by-ref/core-deposits/{ref}", timeout=5)


async def test_an_inbound_events_correlation_id_is_in_the_logs_of_all_three_consumers_and_metrics_move(
    platform: Platform, topics: str
) -> None:
    before = scrape(platform.processes.url("profile"))
    ref = unique_ref("CORR")
    balance = account_balance(ref, f"{ref}-TD", "260000.00", as_of=datetime.now(UTC) - timedelta(days=40))
    await produce(topics, [(BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD")), (BANK_ACCOUNTS, balance)])
    pattern = re.compile(rf'"correlation_id": "{re.escape(balance.id)}"')

    def seen_in(service: str) -> bool:
        log = (platform.log_dir / f"{service}.log").read_text()
        return any(pattern.search(line) and '"event.applied"' in line for line in log.splitlines())

    for _ in range(150):
        if all(seen_in(s) for s in ("profile", "scoring", "engagement")):
            break
        await asyncio.sleep(0.2)
    assert {s: seen_in(s) for s in ("profile", "scoring", "engagement")} == dict.fromkeys(
        ("profile", "scoring", "engagement"), True
    )

    after = scrape(platform.processes.url("profile"))
    consumed = {"group": "c360-profile", "topic": BANK_ACCOUNTS, "type": "bank.account.balance.v1"}
    assert metric(after, "c360_events_consumed_total", **consumed) > metric(
        before, "c360_events_consumed_total", **consumed
    )
    assert metric(after, "c360_event_lag_seconds_count", group="c360-profile") > 0
    assert metric(after, "c360_outbox_published_total") > 0
    assert 'c360_consumer_lag{group="c360-profile"' in after
    gateway = scrape(platform.gateway)
    assert metric(gateway, "c360_http_requests_total", route="/healthz", status="200") > 0


async def test_a_dead_letter_is_replayed_once_after_the_fix_and_lag_is_reported(
    platform: Platform, topics: str
) -> None:
    # A valid record that an older consumer refused (say, before it knew the type): it waits on the .dlq.
    ref = unique_ref("DLQ")
    event = customer_upserted(ref, full_name="Tang Wen")
    producer = make_producer(topics, client_id="e2e-dlq")
    await producer.start()
    try:
        await producer.send_and_wait(
            dlq_topic(BANK_CUSTOMERS),
            value=event.to_bytes(),
            key=ref.encode(),
            headers=[
                (DLQ_REASON_HEADER, b"unknown event type (simulated)"),
                (DLQ_TOPIC_HEADER, BANK_CUSTOMERS.encode()),
            ],
        )
    finally:
        await producer.stop()
    waiting = [d for d in await read_dead_letters(topics, BANK_CUSTOMERS) if d.event_id == event.id]
    assert len(waiting) == 1
    assert (waiting[0].topic, waiting[0].reason) == (BANK_CUSTOMERS, "unknown event type (simulated)")
    assert by_ref(platform, ref).status_code == 404

    assert await replay_dead_letters(topics, waiting) == 1
    view = poll(lambda: by_ref(platform, ref), lambda r: r.status_code == 200)
    assert view["full_name"] == "Tang Wen"
    before = scrape(platform.processes.url("profile"))
    await replay_dead_letters(topics, waiting)  # twice: the idempotency record makes it a no-op
    await asyncio.sleep(2)
    after = scrape(platform.processes.url("profile"))
    applied = {"group": "c360-profile", "type": "bank.customer.upserted.v1"}
    assert metric(after, "c360_events_consumed_total", **applied) == metric(
        before, "c360_events_consumed_total", **applied
    )
    assert metric(after, "c360_events_duplicate_total", group="c360-profile") > metric(
        before, "c360_events_duplicate_total", group="c360-profile"
    )

    groups = {"c360-profile": [BANK_CUSTOMERS, BANK_ACCOUNTS], "c360-scoring": ["c360.profiles.v1"]}
    rows = await consumer_lag(topics, groups)
    assert {r.group for r in rows} == set(groups)
    assert {(r.group, r.topic) for r in rows} == {(g, t) for g, ts in groups.items() for t in ts}
    # Profile has consumed the replayed record: nothing is left on its partition of the topic.
    mine = [r for r in rows if r.group == "c360-profile" and r.topic == BANK_CUSTOMERS and r.committed is not None]
    assert mine
    assert sum(r.lag for r in mine) == 0, mine
