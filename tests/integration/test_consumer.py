"""The shared consumer loop against the real broker and database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from sqlalchemy import Column, MetaData, Table, Text, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts import BANK_ACCOUNTS, DLQ_GROUP_HEADER, DLQ_REASON_HEADER, CloudEvent, dlq_topic
from runtime.clock import SystemClock
from runtime.consumer import BatchConsumer, BatchContext, ConsumedEvent
from runtime.db import add_runtime_tables, create_engine, runtime_table, session_factory, transaction
from runtime.kafka import header, make_producer
from runtime.outbox import OutboxMessage, OutboxRelay, write_outbox
from runtime.settings import ConsumerSettings, OutboxSettings
from tests.builders import account_balance, account_opened, unique_ref

SCHEMA = "runtime_test"
metadata = MetaData(schema=SCHEMA)
add_runtime_tables(metadata)
effects = Table(
    "effects",
    metadata,
    Column("event_id", Text, nullable=False),
    Column("customer_ref", Text, nullable=False),
)


@dataclass
class Harness:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    bootstrap: str

    def consumer(self, group_id: str, handler: Callable[..., object] | None = None, **kw: object) -> BatchConsumer:
        cls = kw.pop("cls", BatchConsumer)
        return cls(  # type: ignore[operator]
            name="runtime-test",
            topics=[BANK_ACCOUNTS],
            group_id=group_id,
            bootstrap_servers=self.bootstrap,
            sessions=self.sessions,
            processed_table=runtime_table(metadata, "processed_events"),
            outbox_table=runtime_table(metadata, "outbox"),
            handler=handler or record_effects,
            producer=self.producer,
            clock=SystemClock(),
            settings=ConsumerSettings(
                poll_timeout_ms=100, retry_initial_s=0.05, max_batch=500, session_timeout_ms=10_000
            ),
        )

    def relay(self, outbox: Table, settings: OutboxSettings) -> OutboxRelay:
        return OutboxRelay(
            name="runtime-test", sessions=self.sessions, table=outbox, producer=self.producer, settings=settings
        )

    async def pending(self, outbox: Table, key: str, *, below: int | None = None) -> int:
        """Outbox rows of `key` not yet published (with ids below `below`, when given)."""
        stmt = select(func.count()).where(outbox.c.message_key == key, outbox.c.published_at.is_(None))
        async with self.sessions() as session:
            return int(await session.scalar(stmt if below is None else stmt.where(outbox.c.id < below)) or 0)

    async def send(self, event: CloudEvent | bytes, key: str) -> None:
        value = event if isinstance(event, bytes) else event.to_bytes()
        await self.producer.send_and_wait(BANK_ACCOUNTS, value=value, key=key.encode())

    async def effects_for(self, customer_ref: str) -> list[str]:
        async with self.sessions() as session:
            rows = await session.execute(select(effects.c.event_id).where(effects.c.customer_ref == customer_ref))
            return list(rows.scalars())


async def record_effects(ctx: BatchContext, events: Sequence[ConsumedEvent]) -> None:
    await ctx.session.execute(
        insert(effects),
        [{"event_id": e.envelope.id, "customer_ref": e.parsed.key} for e in events],
    )


@pytest.fixture
async def harness(migrated_database: str, topics: str) -> AsyncIterator[Harness]:
    engine = create_engine(migrated_database)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    producer = make_producer(topics, client_id="runtime-test")
    await producer.start()
    yield Harness(engine, session_factory(engine), producer, topics)
    await producer.stop()
    await engine.dispose()


async def eventually(check: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def run_until(consumer: BatchConsumer, condition: Callable[[], object], timeout_s: float = 30.0) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(condition, timeout_s)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 45)


async def dead_letters(bootstrap: str, group_id: str, key: str, expected: int) -> list[ConsumerRecord[bytes, bytes]]:
    """The `.dlq` records that this test's consumer group wrote for messages keyed `key`."""
    reader = AIOKafkaConsumer(
        dlq_topic(BANK_ACCOUNTS), bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while len(found) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await reader.getmany(timeout_ms=500)
            for records in batch.values():
                found += [
                    r for r in records if header(r.headers, DLQ_GROUP_HEADER) == group_id and r.key == key.encode()
                ]
    finally:
        await reader.stop()
    return found


def group() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def test_malformed_and_invalid_events_go_to_the_dlq_and_the_events_behind_them_are_applied(
    harness: Harness,
) -> None:
    ref = unique_ref()
    group_id = group()
    bad_amount = account_balance(ref, "A1", "10.00").to_bytes().replace(b'"balance":"10.00"', b'"balance":10.0')
    await harness.send(b"{not json", ref)
    await harness.send(bad_amount, ref)
    good = account_opened(ref, "A1")
    await harness.send(good, ref)

    await run_until(harness.consumer(group_id), lambda: harness.effects_for(ref))

    assert await harness.effects_for(ref) == [good.id]
    letters = await dead_letters(harness.bootstrap, group_id, ref, expected=2)
    reasons = sorted(header(r.headers, DLQ_REASON_HEADER) or "" for r in letters)
    assert len(letters) == 2
    assert any("malformed JSON" in reason for reason in reasons)
    assert any("balance" in reason for reason in reasons)
    assert {r.value for r in letters} == {b"{not json", bad_amount}


async def test_the_same_event_delivered_twice_has_one_effect(harness: Harness) -> None:
    ref = unique_ref()
    event = account_opened(ref, "A1")
    marker = account_opened(ref, "A2")
    await harness.send(event, ref)
    await harness.send(event, ref)
    await harness.send(marker, ref)

    await run_until(harness.consumer(group()), lambda: _has(harness, ref, marker.id))

    assert sorted(await harness.effects_for(ref)) == sorted([event.id, marker.id])


class CrashBeforeOffsetCommit(BatchConsumer):
    """Dies once after the database commit of the batch holding the test's events (keyed
    `target`) and before committing its offsets, like a killed pod. The topic also holds other
    tests' events, which a new group reads first."""

    target = b""
    crashed = False
    committed_after_restart = False

    async def _commit_offsets(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        ours = any(record.key == CrashBeforeOffsetCommit.target for record in records)
        if ours and not CrashBeforeOffsetCommit.crashed:
            CrashBeforeOffsetCommit.crashed = True
            raise RuntimeError("simulated crash between database commit and offset commit")
        await super()._commit_offsets(records)
        if ours:
            CrashBeforeOffsetCommit.committed_after_restart = True


async def test_a_crash_between_database_commit_and_offset_commit_causes_no_double_effect(
    harness: Harness,
) -> None:
    ref = unique_ref()
    events = [account_opened(ref, f"A{n}") for n in range(5)]
    for event in events:
        await harness.send(event, ref)
    CrashBeforeOffsetCommit.target = ref.encode()
    consumer = harness.consumer(group(), cls=CrashBeforeOffsetCommit)
    processed = runtime_table(metadata, "processed_events")

    await run_until(consumer, lambda: CrashBeforeOffsetCommit.committed_after_restart, timeout_s=60)

    assert CrashBeforeOffsetCommit.crashed
    assert await _count(harness, processed, events) == len(events)
    assert sorted(await harness.effects_for(ref)) == sorted(e.id for e in events)


async def test_a_poison_event_is_isolated_and_the_rest_of_its_batch_is_applied(harness: Harness) -> None:
    ref = unique_ref()
    poison = unique_ref("POISON")
    group_id = group()

    async def fussy(ctx: BatchContext, events: Sequence[ConsumedEvent]) -> None:
        if any(e.parsed.key == poison for e in events):
            raise ValueError("cannot apply this customer")
        await record_effects(ctx, events)

    before, after = account_opened(ref, "A1"), account_opened(ref, "A2")
    await harness.send(before, ref)
    await harness.send(account_opened(poison, "P1"), ref)
    await harness.send(after, ref)

    await run_until(harness.consumer(group_id, fussy), lambda: _has(harness, ref, after.id))

    assert sorted(await harness.effects_for(ref)) == sorted([before.id, after.id])
    letters = await dead_letters(harness.bootstrap, group_id, ref, expected=1)
    assert len(letters) == 1
    assert "cannot apply this customer" in (header(letters[0].headers, DLQ_REASON_HEADER) or "")


async def _has(harness: Harness, ref: str, event_id: str) -> bool:
    return event_id in await harness.effects_for(ref)


async def _count(harness: Harness, table: Table, events: Sequence[CloudEvent]) -> int:
    async with harness.sessions() as session:
        result = await session.scalar(
            select(func.count()).select_from(table).where(table.c.event_id.in_([e.id for e in events]))
        )
        return int(result or 0)


async def test_written_outbox_rows_keep_the_messages_order_bytes_and_headers(harness: Harness) -> None:
    outbox = runtime_table(metadata, "outbox")
    ref = unique_ref("ORDER")
    messages = [
        OutboxMessage(
            topic=BANK_ACCOUNTS,
            key=f"{ref}-{i % 3}",
            event=account_balance(ref, f"{ref}-A", f"{i}.00"),
            headers={"c360-correlation-id": f"corr-{i}"} if i % 2 else {},
        )
        for i in range(300)
    ]
    async with transaction(harness.sessions) as session:
        await write_outbox(session, outbox, messages[:1])
        await write_outbox(session, outbox, messages[1:])
    async with harness.sessions() as session:
        rows = (
            await session.execute(
                select(outbox.c.message_key, outbox.c.payload, outbox.c.headers)
                .where(outbox.c.message_key.startswith(ref))
                .order_by(outbox.c.id)
            )
        ).all()
    # The relay publishes in id order: the ids follow the order the messages were written in.
    assert [(r.message_key, r.payload, r.headers) for r in rows] == [
        (m.key, m.event.to_bytes(), m.headers) for m in messages
    ]


async def test_the_relay_purges_published_rows_past_the_retention_while_it_keeps_publishing(harness: Harness) -> None:
    outbox = runtime_table(metadata, "outbox")
    relay = harness.relay(outbox, OutboxSettings(retention_hours=0, purge_interval_s=0.2, idle_poll_s=0.05))
    ref = unique_ref("PURGE")

    async def write(count: int) -> None:
        async with transaction(harness.sessions) as session:
            messages = [
                OutboxMessage(topic=BANK_ACCOUNTS, key=ref, event=account_balance(ref, f"{ref}-A", f"{i}.00"))
                for i in range(count)
            ]
            await write_outbox(session, outbox, messages)

    async def rows() -> tuple[int, int]:
        async with harness.sessions() as session:
            pending = await session.scalar(
                select(func.count()).where(outbox.c.message_key == ref, outbox.c.published_at.is_(None))
            )
            kept = await session.scalar(select(func.count()).where(outbox.c.message_key == ref))
            return pending or 0, kept or 0

    task = asyncio.create_task(relay.run())
    try:
        await write(20)
        await eventually(lambda: _equals(rows(), (0, 0)))  # published, then purged
        await write(5)
        await eventually(lambda: _equals(rows(), (0, 0)))
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_a_commit_that_wrote_outbox_rows_wakes_the_relay_and_nothing_else_does(harness: Harness) -> None:
    """The relay hears of rows from the commit that wrote them, with the soonest publication any
    writer in the transaction asked for; a transaction that wrote none, or rolled back, is silent.
    With a poll far longer than the test, only the wake can have published them."""
    outbox = runtime_table(metadata, "outbox")
    ref = unique_ref("WAKE")
    told: list[float] = []
    relay = harness.relay(outbox, OutboxSettings(idle_poll_s=600))

    def committed(within_s: float) -> None:
        told.append(within_s)
        relay.wake(within_s)

    sessions = session_factory(harness.engine, on_outbox_commit=committed)

    def message(i: int) -> OutboxMessage:
        return OutboxMessage(topic=BANK_ACCOUNTS, key=ref, event=account_balance(ref, f"{ref}-A", f"{i}.00"))

    async def pending() -> int:
        return await harness.pending(outbox, ref)

    async with transaction(sessions) as session:
        await write_outbox(session, outbox, [])

    async def refused() -> None:
        async with transaction(sessions) as session:
            await write_outbox(session, outbox, [message(0)])
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await refused()
    assert told == []
    assert await pending() == 0

    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the relay's first round has found nothing and it waits
        async with transaction(sessions) as session:
            await write_outbox(session, outbox, [message(1)], within_s=0.3)
            await write_outbox(session, outbox, [message(2)])
        assert told == [0.0]
        await eventually(lambda: _equals(pending(), 0), timeout_s=5)

        async with transaction(sessions) as session:
            await write_outbox(session, outbox, [message(3)], within_s=0.3)
        assert told == [0.0, 0.3]
        assert await pending() == 1, "published within 0.3 s, not at once"
        await eventually(lambda: _equals(pending(), 0), timeout_s=5)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)


async def test_a_log_that_went_backwards_is_read_again_from_its_beginning(harness: Harness) -> None:
    """Where a memory-mode broker restarted under a consumer leaves it: the logs it had read to
    some end now end short of that, and its positions lie past their ends, where the broker
    answers every fetch with nothing. The consumer sees the logs went backwards, resets its
    positions to the beginning, as Kafka's OFFSET_OUT_OF_RANGE would, and reads what is there."""
    ref = unique_ref("RESET")
    first = account_opened(ref, "A1")
    await harness.send(first, ref)
    consumer = harness.consumer(group())
    await consumer._start_consumer()
    kafka = consumer._consumer
    assert kafka is not None
    await eventually(lambda: kafka.assignment(), timeout_s=20)
    for tp, end in (await kafka.end_offsets(list(kafka.assignment()))).items():
        consumer._log_ends[tp] = end + 1000  # what the consumer saw on the broker before
        kafka.seek(tp, end + 1000)  # and where it was reading

    await run_until(consumer, lambda: _has(harness, ref, first.id), timeout_s=20)

    assert await harness.effects_for(ref) == [first.id]


async def test_rows_no_wake_announced_are_published_within_the_idle_poll_while_wakes_keep_coming(
    harness: Harness,
) -> None:
    """A row no commit announced (one another replica wrote, here through a session factory that
    tells no relay), and below the ids the waking commits write, is published within `idle_poll_s`
    however many wakes arrive meanwhile: a relay that only looked from the woken commits' rows
    on would leave it pending."""
    outbox = runtime_table(metadata, "outbox")
    ref = unique_ref("FLOOR")
    relay = harness.relay(outbox, OutboxSettings(idle_poll_s=1.0))
    waking = session_factory(harness.engine, on_outbox_commit=relay.wake)

    def message(i: int) -> OutboxMessage:
        return OutboxMessage(topic=BANK_ACCOUNTS, key=ref, event=account_balance(ref, f"{ref}-A", f"{i}.00"))

    async def pending(*, below: int | None = None) -> int:
        return await harness.pending(outbox, ref, below=below)

    async def highest() -> int:
        async with harness.sessions() as session:
            return int(await session.scalar(select(func.max(outbox.c.id)).where(outbox.c.message_key == ref)) or 0)

    async def write(sessions: async_sessionmaker[AsyncSession], i: int) -> None:
        async with transaction(sessions) as session:
            await write_outbox(session, outbox, [message(i)])

    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the relay's first round has found nothing and it waits
        # The unannounced row is written, and left uncommitted while a woken commit writes a
        # higher id: a relay looking only from the woken commits' rows would pass it by.
        async with transaction(harness.sessions) as foreign:
            await write_outbox(foreign, outbox, [message(0)])
            await write(waking, 1)
            announced = await highest()
        started = asyncio.get_running_loop().time()
        published_at = None
        for i in range(2, 30):
            await write(waking, i)
            if published_at is None and await pending(below=announced) == 0:
                published_at = asyncio.get_running_loop().time() - started
            await asyncio.sleep(0.1)
        assert published_at is not None, "the row no wake announced was left pending"
        assert published_at < 2.0
        await eventually(lambda: _equals(pending(), 0), timeout_s=5)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)


async def test_a_relay_publishes_nothing_while_another_holds_its_lock(harness: Harness) -> None:
    """One relay per service publishes at a time, across replicas: while another holds the
    relay's advisory lock a round claims no row, and once it is released the next round does."""
    outbox = runtime_table(metadata, "outbox")
    ref = unique_ref("LOCK")
    relay = harness.relay(outbox, OutboxSettings())

    async def pending() -> int:
        return await harness.pending(outbox, ref)

    async with transaction(harness.sessions) as session:
        message = OutboxMessage(topic=BANK_ACCOUNTS, key=ref, event=account_balance(ref, f"{ref}-A", "1.00"))
        await write_outbox(session, outbox, [message])
    async with harness.sessions() as other, other.begin():
        await other.execute(select(func.pg_advisory_xact_lock(relay.lock_key)))
        assert await relay.publish_pending() == 0
        assert await pending() == 1
    while await relay.publish_pending():  # rows other tests left are published too
        pass
    assert await pending() == 0
