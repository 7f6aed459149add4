"""Poison and hostile input: a generated corpus of malformed bytes, wrong types, missing fields,
huge payloads, unknown types, absurd amounts, bad currencies, future dates and wrong encodings,
interleaved with a valid stream on the same keys. Every one ends in its topic's `.dlq` with a
reason (once per consumer group that reads the topic), no consumer crashes, and the valid events
around them all apply."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from c360.ops import read_dead_letters
from contracts import (
    BANK_ACCOUNTS,
    BANK_CUSTOMERS,
    BANK_FX_RATES,
    BANK_INTERACTIONS,
    BANK_TRANSACTIONS,
    C360_PROFILES,
    C360_SCORES,
    C360_TIERS,
    DLQ_GROUP_HEADER,
    DLQ_REASON_HEADER,
    InteractionKind,
    InvalidEvent,
    parse_event,
)
from runtime.consumer import from_the_future
from runtime.kafka import header, make_producer
from tests.builders import (
    account_balance,
    customer_upserted,
    fx_rate,
    interaction_recorded,
    profile_updated,
    transaction_posted,
)
from tests.faults.bank import Events, bank_of, expected_state, settle
from tests.faults.conftest import FaultPlatform

pytestmark = pytest.mark.timeout(240)

POISON_HEADER = "fault-poison-id"
GROUPS = {
    BANK_CUSTOMERS: {"c360-profile"},
    BANK_ACCOUNTS: {"c360-profile"},
    BANK_TRANSACTIONS: {"c360-profile"},
    BANK_INTERACTIONS: {"c360-profile"},
    BANK_FX_RATES: {"c360-profile"},
    C360_PROFILES: {"c360-scoring", "c360-engagement"},
    C360_TIERS: {"c360-engagement"},
    C360_SCORES: {"c360-engagement"},
}
KEY = "SIM-301-0000001"  # a customer of the valid stream: poison shares its partition
FAR = datetime.now(UTC) + timedelta(days=3650)


@dataclass(frozen=True)
class Poison:
    kind: str
    topic: str
    value: bytes | None


def valid_bodies() -> list[tuple[str, dict[str, Any]]]:
    """One valid event of each consumed kind, as JSON bodies to break."""
    ref = KEY
    account = f"{ref}-POISON"
    events = [
        (BANK_CUSTOMERS, customer_upserted(ref, full_name="Poison Test")),
        (BANK_ACCOUNTS, account_balance(ref, account, "100.00")),
        (BANK_TRANSACTIONS, transaction_posted(ref, account, "10.00")),
        (BANK_INTERACTIONS, interaction_recorded(ref, InteractionKind.VISIT)),
        (BANK_FX_RATES, fx_rate("USD", "7.12")),
        (C360_PROFILES, profile_updated("C0000000000000000", "1000.00")),
    ]
    return [(topic, json.loads(event.to_bytes())) for topic, event in events]


BODIES = valid_bodies()
body = st.sampled_from(BODIES)


def mutate(kind: str, change: Callable[[dict[str, Any], Any], None], values: st.SearchStrategy[Any]) -> Any:
    @st.composite
    def build(draw: st.DrawFn) -> Poison:
        topic, original = draw(body)
        event = json.loads(json.dumps(original))
        change(event, draw(values))
        return Poison(kind, topic, json.dumps(event).encode())

    return build()


def _drop(event: dict[str, Any], pick: int) -> None:
    fields = [*sorted(event["data"]), "<id>", "<source>", "<type>", "<time>", "<specversion>", "<data>"]
    name = fields[pick % len(fields)]
    if name.startswith("<"):
        del event[name.strip("<>")]
    else:
        required = {"full_name", "balance", "amount", "customer_ref", "kind", "currency", "customer_id", "id_number"}
        del event["data"][name if name in required else next(f for f in sorted(event["data"]) if f in required)]


WRONG_TYPES = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _wrong_type(event: dict[str, Any], value: Any) -> None:
    data = event["data"]
    for name in ("balance", "amount", "rate_to_cny", "aum_cny", "full_name", "kind"):
        if name in data:
            data[name] = value
            return


def _amount(*fields: str) -> Callable[[dict[str, Any], str], None]:
    """Put `value` in the first of `fields` the event has; other events become transactions."""

    def change(event: dict[str, Any], value: str) -> None:
        for name in fields:
            if name in event["data"]:
                event["data"][name] = value
                return
        event["type"], event["data"] = BODIES[2][1]["type"], {**BODIES[2][1]["data"], "amount": value}
        event["_topic"] = BANK_TRANSACTIONS

    return change


ABSURD = st.one_of(
    st.integers(min_value=19, max_value=40).map(lambda n: "9" * n),
    st.integers(min_value=9, max_value=20).map(lambda n: "0." + "0" * n + "1"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e30", "12,50", "1 000", "", "--1", "0x10"]),
    st.just("\u0661\u0660\u0660"),  # Arabic-Indic digits
)
NOT_POSITIVE = st.sampled_from(["0", "-0.01", "-5", "-1000000"])
BAD_CURRENCIES = st.sampled_from(["usd", "US", "USDD", "12$", "€", "", "RMB ", "CN¥", None, 156])


def _currency(event: dict[str, Any], value: Any) -> None:
    if "currency" not in event["data"]:
        event.update({k: v for k, v in json.loads(json.dumps(BODIES[1][1])).items() if k != "id"})
        event["_topic"] = BANK_ACCOUNTS
    event["data"]["currency"] = value


def _future(event: dict[str, Any], days: int) -> None:
    when = (FAR + timedelta(days=days)).isoformat()
    event["time"] = when
    for name in ("as_of", "posted_at", "occurred_at"):
        if name in event["data"]:
            event["data"][name] = when


def _huge(event: dict[str, Any], size: int) -> None:
    for name in ("full_name", "account_ref", "transaction_ref", "interaction_ref", "customer_id", "currency"):
        if name in event["data"]:
            event["data"][name] = "W" * size
            return


def _unknown_type(event: dict[str, Any], name: str) -> None:
    event["type"] = name


def _control(event: dict[str, Any], char: str) -> None:
    for name in ("customer_ref", "customer_id", "currency"):
        if name in event["data"]:
            event["data"][name] = f"SIM{char}301"
            return


def retarget(poison: Poison) -> Poison:
    """A mutation that switched the event to another type moves it to that type's topic."""
    if poison.value is None:
        return poison
    try:
        event = json.loads(poison.value)
    except ValueError:
        return poison
    if isinstance(event, dict) and "_topic" in event:
        topic = event.pop("_topic")
        return Poison(poison.kind, topic, json.dumps(event).encode())
    return poison


def encoded(kind: str, encoding: str) -> Any:
    topic, original = BODIES[0]
    event = {**original, "data": {**original["data"], "full_name": "Zoë Lóng Wáng 王伟"}}
    text = json.dumps(event, ensure_ascii=False)
    return st.just(Poison(kind, topic, text.encode(encoding, errors="replace")))


TOPICS = st.sampled_from(sorted(GROUPS))
POISON = st.one_of(
    st.builds(Poison, st.just("bytes"), TOPICS, st.binary(max_size=300)),
    st.builds(Poison, st.just("tombstone"), TOPICS, st.none()),
    st.builds(
        Poison,
        st.just("not an object"),
        TOPICS,
        st.one_of(st.integers(), st.text(max_size=20), st.lists(st.booleans(), max_size=3)).map(
            lambda v: json.dumps(v).encode()
        ),
    ),
    *(encoded("encoding", e) for e in ("latin-1", "utf-16", "utf-32", "cp1252")),
    mutate("missing field", _drop, st.integers(0, 50)),
    mutate("wrong type", _wrong_type, WRONG_TYPES),
    mutate("huge", _huge, st.integers(100_000, 400_000)),
    mutate(
        "unknown type", _unknown_type, st.one_of(st.text(min_size=1, max_size=30), st.just("bank.account.balance.v9"))
    ),
    mutate("absurd amount", _amount("balance", "amount", "rate_to_cny", "aum_cny"), ABSURD),
    mutate("not positive", _amount("amount", "rate_to_cny"), NOT_POSITIVE),
    mutate("bad currency", _currency, BAD_CURRENCIES),
    mutate("future date", _future, st.integers(0, 36_500)),
    mutate("control characters", _control, st.sampled_from(["\x00", "\n", "\x1b", "\x7f"])),
).map(retarget)


def refused(poison: Poison) -> bool:
    """What the consumer loop does first: contract validation, then the future check."""
    try:
        parsed = parse_event(poison.value, topic=poison.topic)
    except InvalidEvent:
        return True
    return from_the_future(parsed, datetime.now(UTC), timedelta(minutes=5)) is not None


def generated_corpus(size: int) -> list[Poison]:
    """`size` poison messages drawn by hypothesis (the same ones every run), each checked to be
    refused by the consumer's own validation before it goes near the platform."""
    corpus: list[Poison] = []

    @settings(
        max_examples=size,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(POISON)
    def collect(poison: Poison) -> None:
        assert refused(poison), poison
        corpus.append(poison)

    collect()
    return corpus


async def produce_interleaved(
    platform: FaultPlatform, valid: Events, corpus: list[Poison], seed: int
) -> dict[str, Poison]:
    """The valid stream in order, each poison message at a random place, keyed like the valid
    customer it sits beside; returns the poison by the id in its header."""
    rng = random.Random(seed)
    slots = sorted(rng.randrange(len(valid) + 1) for _ in corpus)
    marked: dict[str, Poison] = {}
    producer = make_producer(platform.bootstrap, client_id="fault-poison")
    await producer.start()
    try:
        pending = []
        poison = iter(zip(slots, corpus, strict=True))
        upcoming = next(poison, None)
        for index, (topic, event) in enumerate([*valid, ("", None)]):
            while upcoming is not None and upcoming[0] == index:
                mark = str(uuid.uuid4())
                marked[mark] = upcoming[1]
                pending.append(
                    await producer.send(
                        upcoming[1].topic,
                        value=upcoming[1].value,
                        key=KEY.encode(),
                        headers=[(POISON_HEADER, mark.encode())],
                    )
                )
                upcoming = next(poison, None)
            if event is not None:
                pending.append(await producer.send(topic, value=event.to_bytes(), key=(event.subject or "").encode()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return marked


async def dead_lettered(
    platform: FaultPlatform, marked: dict[str, Poison], timeout_s: float = 120
) -> dict[str, dict[str, str]]:
    """Poison id -> {consumer group: reason} from the `.dlq` topics, once all have arrived."""
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[str, dict[str, str]] = {}
        for topic in GROUPS:
            for letter in await read_dead_letters(platform.bootstrap, topic):
                mark = header(letter.headers, POISON_HEADER)
                if mark in marked:
                    found.setdefault(mark, {})[header(letter.headers, DLQ_GROUP_HEADER) or ""] = (
                        header(letter.headers, DLQ_REASON_HEADER) or ""
                    )
        missing = {m: p for m, p in marked.items() if set(found.get(m, {})) != GROUPS[p.topic]}
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(missing)} of {len(marked)} poison messages not dead-lettered by every group: "
                + "; ".join(
                    f"{p.kind} on {p.topic}: {(p.value or b'')[:200]!r} ({found.get(m)})"
                    for m, p in list(missing.items())[:8]
                )
            )
        await asyncio.sleep(1)


def test_every_poison_message_ends_in_its_dlq_with_a_reason_and_the_valid_stream_around_it_applies(
    platform: FaultPlatform,
) -> None:
    corpus = generated_corpus(80)
    assert {p.kind for p in corpus} >= {
        "bytes",
        "encoding",
        "missing field",
        "wrong type",
        "huge",
        "unknown type",
        "absurd amount",
        "not positive",
        "bad currency",
        "future date",
    }
    bank = bank_of(seed=301, customers=60)
    valid = list(bank.events())
    assert KEY in {c.key for c in bank.customers()}

    async def scenario() -> dict[str, dict[str, str]]:
        marked = await produce_interleaved(platform, valid, corpus, seed=301)
        letters = await dead_lettered(platform, marked, timeout_s=90)
        await settle(platform, bank, expected_state(bank, valid), timeout_s=90)
        return letters

    letters = asyncio.run(scenario())
    assert all(reason for reasons in letters.values() for reason in reasons.values())
    assert platform.processes.exited() == {}
    for name in ("profile", "scoring", "engagement"):
        platform.wait_ready(name, timeout_s=10)
