"""Duplicates and disorder: every event delivered twice, and each account's balance events
shuffled, end in the same state as the clean stream."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from tests.faults.bank import Events, bank_of, expected_state, outbox_delivered_exactly_once, produce, settle
from tests.faults.conftest import FaultPlatform

pytestmark = pytest.mark.timeout(240)


def doubled_and_shuffled(events: Events, rng: random.Random) -> Events:
    """Per Kafka key (the order the broker keeps): balance events shuffled within their account,
    then every event sent a second time at a random later place of the same key."""
    by_key: dict[str, Events] = defaultdict(list)
    for topic, event in events:
        by_key[event.subject or ""].append((topic, event))
    stream: Events = []
    for keyed in by_key.values():
        slots: dict[str, list[int]] = defaultdict(list)
        for index, (_, event) in enumerate(keyed):
            if event.type == "bank.account.balance.v1":
                slots[event.data["account_ref"]].append(index)
        shuffled = list(keyed)
        for indexes in slots.values():
            moved = [keyed[i] for i in indexes]
            rng.shuffle(moved)
            for i, item in zip(indexes, moved, strict=True):
                shuffled[i] = item
        doubled = list(shuffled)
        for item in shuffled:
            doubled.insert(rng.randint(doubled.index(item) + 1, len(doubled)), item)
        stream += doubled
    return stream


async def test_every_event_twice_and_balances_out_of_order_end_in_the_clean_streams_state(
    platform: FaultPlatform,
) -> None:
    bank = bank_of(seed=201)
    clean = list(bank.events())
    stream = doubled_and_shuffled(clean, random.Random(201))
    assert len(stream) == 2 * len(clean)
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for _, event in stream:
        if event.type == "bank.account.balance.v1" and event.id not in seen:
            seen.add(event.id)
            first_seen[event.data["account_ref"]].append(event.data["version"])
    assert any(versions != sorted(versions) for versions in first_seen.values()), "no balance arrives out of order"
    await produce(platform, stream)
    await settle(platform, bank, expected_state(bank, clean))
    await outbox_delivered_exactly_once(platform, bank)
