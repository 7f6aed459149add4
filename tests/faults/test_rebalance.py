"""Two instances of each consumer in one group while a stream flows; one of each is stopped
halfway, so the group rebalances under load. The end state is still exact."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from tests.faults.bank import (
    bank_of,
    expected_state,
    outbox_delivered_exactly_once,
    processed,
    produce,
    settle,
    wait_processed,
)
from tests.faults.conftest import CONSUMERS, FaultPlatform, ready

pytestmark = pytest.mark.timeout(240)


def consumed(url: str) -> float:
    """Events this process has applied, from its own metrics."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^c360_events_consumed_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def assigned(url: str) -> bool:
    return "c360_consumer_lag{" in httpx.get(url + "/metrics", timeout=10).text


async def test_two_instances_per_group_with_one_stopped_halfway_end_exactly_on_the_ground_truth(
    platform: FaultPlatform,
) -> None:
    seconds = {name: platform.second_instance(name) for name in CONSUMERS}
    deadline = time.monotonic() + 90
    # Ready, and holding partitions: a consumer reports lag only for the partitions assigned to it.
    while not all(ready(p.url(name)) and assigned(p.url(name)) for name, p in seconds.items()):
        assert time.monotonic() < deadline, "the second instances did not join their groups"
        assert all(not p.exited() for p in seconds.values()), "a second instance exited"
        await asyncio.sleep(0.5)

    bank = bank_of(seed=401, customers=300)
    events = list(bank.events())
    expected = expected_state(bank, events)
    before = await processed(platform, "profile")
    await produce(platform, events)
    await wait_processed(platform, "profile", before + len(events) // 2)
    # Both members of each group had partitions: each applied events of this stream.
    assert consumed(seconds["profile"].url("profile")) > 0
    assert consumed(platform.url("profile")) > 0
    platform.processes.stop(CONSUMERS)  # SIGTERM: the originals leave their groups mid-stream
    await settle(platform, bank, expected)
    await outbox_delivered_exactly_once(platform, bank)
    assert all(not p.exited() for p in seconds.values())
