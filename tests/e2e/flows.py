"""Helpers the end-to-end tests share: produce events, poll the gateway, read outbound topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from pydantic import BaseModel

from c360.ops import total_lag
from contracts import CloudEvent, parse_event
from runtime.kafka import make_producer


async def produce(bootstrap: str, events: list[tuple[str, CloudEvent]]) -> None:
    producer = make_producer(bootstrap, client_id="e2e-test")
    await producer.start()
    try:
        for topic, event in events:
            await producer.send_and_wait(topic, value=event.to_bytes(), key=(event.subject or "").encode())
    finally:
        await producer.stop()


def poll(fetch: Callable[[], httpx.Response], ready: Callable[[httpx.Response], bool], timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        response = fetch()
        if ready(response):
            return response.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready in {timeout_s}s: {response.status_code} {response.text[:500]}")
        time.sleep(0.2)


async def when_quiet(bootstrap: str, read: Callable[[], Any], timeout_s: float = 60) -> Any:
    """What `read` returns once the platform is quiet: every consumer group has committed all it
    was sent, and `read` returns the same a second later (a relay may publish from an outbox
    in between). For a test measuring a platform-wide figure while earlier tests' events drain."""
    deadline = time.monotonic() + timeout_s
    before = read()
    while True:
        await asyncio.sleep(1)
        lag = await total_lag(bootstrap)
        now = read()
        if lag == 0 and now == before:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"the platform was not quiet in {timeout_s}s (lag {lag})")
        before = now


async def outbound(bootstrap: str, topic: str, customer_id: str, expected: int) -> list[BaseModel]:
    """The data of every event published for `customer_id` on `topic`.

    Reads until `expected` have arrived, then a little longer, so that a duplicate shows up too.
    """
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await reader.start()
    found: list[BaseModel] = []
    try:
        deadline = time.monotonic() + 15
        settle_until: float | None = None
        while time.monotonic() < (settle_until or deadline):
            for records in (await reader.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key == customer_id.encode():
                        found.append(parse_event(record.value, topic=topic).data)
            if settle_until is None and len(found) >= expected:
                settle_until = time.monotonic() + 2
    finally:
        await reader.stop()
    return found
