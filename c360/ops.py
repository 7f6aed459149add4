"""Operations on the broker: list and replay `.dlq` messages, and report consumer-group lag.

`c360 dlq list TOPIC` shows what a topic's dead-letter topic holds, with the reason each message
was refused. After the fix (a producer corrected, a consumer upgraded), `c360 dlq replay TOPIC`
produces the messages again to the topic they came from, with their key and original headers;
consumers deduplicate on `source` + `id`, so replaying twice applies nothing twice, and a
message that is still invalid simply lands on the `.dlq` again. `c360 lag` reports, per consumer
group and partition, how far the group is behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import DLQ_HEADERS, DLQ_REASON_HEADER, DLQ_TOPIC_HEADER, CloudEvent, dlq_topic
from runtime.kafka import header, make_producer


async def produce_all(
    bootstrap: str,
    events: Iterable[tuple[str, CloudEvent]],
    *,
    client_id: str,
    total: int | None = None,
    progress: TextIO | None = None,
) -> int:
    """Produce (topic, event) pairs as fast as the broker takes them, keyed by the event's
    subject, waiting for deliveries a window at a time; with `progress`, a progress line."""
    producer = make_producer(bootstrap, client_id=client_id)
    await producer.start()
    count = 0
    started = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    try:
        for topic, event in events:
            pending.append(await producer.send(topic, value=event.to_bytes(), key=(event.subject or "").encode()))
            count += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                if progress is not None:
                    _progress(progress, count, total, started)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    if progress is not None:
        _progress(progress, count, total, started)
        progress.write("\n")
    return count


def _progress(out: TextIO, count: int, total: int | None, started: float) -> None:
    rate = count / max(time.monotonic() - started, 1e-6)
    if total:
        done = count / total
        bar = "#" * int(done * 30)
        out.write(f"\r[{bar:<30}] {count:,}/{total:,} events, {rate:,.0f}/s")
    else:
        out.write(f"\r{count:,} events, {rate:,.0f}/s")
    out.flush()


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    topic: str  # where it came from
    reason: str
    event_id: str | None
    event_type: str | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Lag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        """Messages the group has yet to consume. Never negative: a broker may answer an end
        offset that trails a fresh commit for a moment."""
        return max(self.end - (self.committed or 0), 0)


def _claims(value: bytes | None) -> tuple[str | None, str | None]:
    try:
        body = json.loads(value or b"")
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    event_id, event_type = body.get("id"), body.get("type")
    return (event_id if isinstance(event_id, str) else None, event_type if isinstance(event_type, str) else None)


async def read_dead_letters(bootstrap: str, topic: str) -> list[DeadLetter]:
    """Everything `topic`'s `.dlq` holds now, oldest first per partition."""
    dlq = dlq_topic(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(dlq) or set()
        if not partitions:
            await consumer.client.force_metadata_update()
            partitions = consumer.partitions_for_topic(dlq) or set()
        assigned = [TopicPartition(dlq, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        found: list[DeadLetter] = []
        remaining = {tp for tp in assigned if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            if not batch:
                break
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    headers = tuple(record.headers or ())
                    event_id, event_type = _claims(record.value)
                    found.append(
                        DeadLetter(
                            partition=record.partition,
                            offset=record.offset,
                            topic=(header(headers, DLQ_TOPIC_HEADER) or topic),
                            reason=header(headers, DLQ_REASON_HEADER) or "",
                            event_id=event_id,
                            event_type=event_type,
                            key=record.key,
                            value=record.value,
                            headers=headers,
                        )
                    )
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


async def replay_dead_letters(bootstrap: str, letters: Sequence[DeadLetter]) -> int:
    """Produce each message again to the topic it was refused on, as it was first sent."""
    producer = make_producer(bootstrap, client_id="c360-dlq-replay")
    await producer.start()
    try:
        for letter in letters:
            original = [(k, v) for k, v in letter.headers if k not in DLQ_HEADERS]
            await producer.send_and_wait(letter.topic, value=letter.value, key=letter.key, headers=original)
    finally:
        await producer.stop()
    return len(letters)


def consumer_groups() -> dict[str, Sequence[str]]:
    """Every consumer group of the platform, as the services configure it, with the topics it reads."""
    from services.engagement import app as engagement
    from services.engagement.settings import EngagementConfig
    from services.profile import app as profile
    from services.profile.settings import ProfileConfig
    from services.scoring import app as scoring
    from services.scoring.settings import ScoringConfig

    return {
        ProfileConfig().group_id: profile.TOPICS,
        ScoringConfig().group_id: scoring.TOPICS,
        EngagementConfig().group_id: engagement.TOPICS,
    }


async def consumer_lag(bootstrap: str, groups: Mapping[str, Sequence[str]]) -> list[Lag]:
    """Per group (with the topics it consumes) and partition: the committed and the end offsets.

    Committed offsets are read as a member of the group would (OffsetFetch through the group
    coordinator) without joining it, so the services' consumers are not disturbed."""
    rows: list[Lag] = []
    for group, topics in groups.items():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))
            ]
            ends = await consumer.end_offsets(partitions) if partitions else {}
            for tp in partitions:
                committed = await consumer.committed(tp)
                rows.append(Lag(group, tp.topic, tp.partition, committed, ends[tp]))
        finally:
            await consumer.stop()
    return rows


async def total_lag(bootstrap: str) -> int:
    """Messages not yet committed by the platform's consumer groups, all topics together."""
    return sum(row.lag for row in await consumer_lag(bootstrap, consumer_groups()))


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer.client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()
