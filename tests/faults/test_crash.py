"""Crash mid-stream: a service killed with SIGKILL while a stream flows through it, then started
again, ends exactly where the stream's ground truth says: every balance, AUM, 30-day average and
tier; every transaction, interaction and reconciliation difference once; and what the outbox
published, read by an idempotent reader, is one for one what the services hold."""

from __future__ import annotations

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
from tests.faults.conftest import FaultPlatform

pytestmark = pytest.mark.timeout(240)


async def test_profile_killed_mid_stream_and_restarted_ends_exactly_on_the_ground_truth(
    platform: FaultPlatform,
) -> None:
    bank = bank_of(seed=101)
    events = list(bank.events())
    expected = expected_state(bank, events)
    before = await processed(platform, "profile")
    await produce(platform, events)
    at_kill = await wait_processed(platform, "profile", before + len(events) * 2 // 5)
    platform.kill("profile")
    assert at_kill - before < len(events), "the stream was over before the kill"
    platform.start("profile")
    await settle(platform, bank, expected)
    await outbox_delivered_exactly_once(platform, bank)


@pytest.mark.parametrize(("service", "seed"), [("scoring", 102), ("engagement", 103)])
async def test_a_consumer_of_profile_events_killed_mid_stream_loses_and_doubles_no_tier_change_or_task(
    platform: FaultPlatform, service: str, seed: int
) -> None:
    bank = bank_of(seed=seed)
    events = list(bank.events())
    expected = expected_state(bank, events)
    before = await processed(platform, service)
    await produce(platform, events)
    # Profile publishes about one profile.updated per customer and batch; a quarter of the
    # customers in, the stream is still flowing.
    await wait_processed(platform, service, before + len(bank.customers()) // 4)
    platform.kill(service)
    platform.start(service)
    await settle(platform, bank, expected)
    await outbox_delivered_exactly_once(platform, bank)
