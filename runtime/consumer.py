"""The batch consumer loop every service uses.

One poll yields a batch. Messages that fail contract validation go to `<topic>.dlq` with the
original bytes and the reason in headers. The valid ones are handed to the service's handler
in ONE database transaction, together with an idempotency record per `(source, id)`, so a
re-delivered event has no second effect. Offsets are committed only after that transaction
commits. A handler failure that is not transient is isolated by re-running the batch one event
per transaction; only the event that still fails goes to the `.dlq`, so a poison message never
stops a partition. Transient failures (database or broker away) are retried with backoff.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import (
    DLQ_AT_HEADER,
    DLQ_GROUP_HEADER,
    DLQ_HEADERS,
    DLQ_OFFSET_HEADER,
    DLQ_PARTITION_HEADER,
    DLQ_REASON_HEADER,
    DLQ_TOPIC_HEADER,
    EVENT_TYPES,
    INBOUND_TOPICS,
    MAX_REASON_LENGTH,
    CloudEvent,
    EventHeader,
    InvalidEvent,
    ParsedEvent,
    build_event,
    dlq_topic,
    parse_event,
)
from runtime import metrics
from runtime.clock import Clock
from runtime.db import insert_unnested, transaction, unnested_params
from runtime.kafka import Headers, header
from runtime.logging import correlation_id
from runtime.outbox import CORRELATION_HEADER, OutboxMessage, write_outbox
from runtime.settings import ConsumerSettings
from runtime.transient import Backoff, is_transient

log = logging.getLogger(__name__)


LAG_INTERVAL_S = 5.0


def _type_of(raw: bytes | None) -> str:
    """The event type a refused message claims, for metrics; `unknown` when it claims none."""
    try:
        value = json.loads(raw or b"")
    except ValueError:
        return "unknown"
    claimed = value.get("type") if isinstance(value, dict) else None
    return claimed if isinstance(claimed, str) and claimed in EVENT_TYPES else "unknown"


def failure_reason(exc: BaseException) -> str:
    """A `.dlq` reason for a handler failure that repeats no event data.

    SQLAlchemy errors render the statement's parameters (names, phones) in their text, so for
    them only the error class and SQLSTATE are kept.
    """
    if isinstance(exc, SQLAlchemyError):
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
        return f"handler failed: {type(exc).__name__}" + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
    return f"handler failed: {type(exc).__name__}: {exc}"


def from_the_future(parsed: ParsedEvent, now: datetime, skew: timedelta) -> str | None:
    """A `.dlq` reason when the event claims to have happened after `now` (give or take `skew`).

    The envelope `time` says when the occurrence happened, and every timestamp in the data of an
    inbound bank event (`as_of`, `posted_at`, `occurred_at`) likewise: none can lie ahead. Accepted,
    such an event would pin the customer's freshness in the future and a balance on a day not yet
    come. Outbound events carry times that may (a task's `due_at`), so only their envelope counts.
    """
    limit = now + skew
    if parsed.envelope.time > limit:
        return f"time: in the future (more than {skew} ahead of the consumer's clock)"
    if parsed.spec.topic in INBOUND_TOPICS:
        for name in instant_fields(type(parsed.data)):
            value = getattr(parsed.data, name)
            if value is not None and value > limit:
                return f"data.{name}: in the future (more than {skew} ahead of the consumer's clock)"
    return None


@functools.cache
def instant_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `model` that hold an instant (a datetime, possibly None), from its
    annotations: looked up once a model, where every event's data was walked field by field
    (the check took 2.5 us a balance event that way, 1.2 us this way)."""
    return tuple(name for name, info in model.model_fields.items() if _holds_instant(info.annotation))


def _holds_instant(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, datetime) or annotation is AwareDatetime
    return any(_holds_instant(arg) for arg in get_args(annotation))


@dataclass(frozen=True)
class ConsumedEvent:
    """A valid event and where it came from."""

    parsed: ParsedEvent
    record: ConsumerRecord[bytes, bytes]

    @property
    def envelope(self) -> EventHeader:
        return self.parsed.envelope

    @property
    def data(self) -> BaseModel:
        return self.parsed.data

    @property
    def type(self) -> str:
        return self.parsed.envelope.type

    @property
    def identity(self) -> tuple[str, str]:
        return (self.parsed.envelope.source, self.parsed.envelope.id)

    @property
    def correlation_id(self) -> str:
        """The id that follows this event through the platform (its own id at the edge)."""
        return header(self.record.headers, CORRELATION_HEADER) or self.parsed.envelope.id


@dataclass
class BatchContext:
    """What a handler gets: the batch's session, the clock, and a way to publish via the outbox."""

    session: AsyncSession
    clock: Clock
    source: str
    outbox: list[OutboxMessage] = field(default_factory=list)

    def publish(
        self,
        data: BaseModel,
        *,
        type_: str | None = None,
        cause: ConsumedEvent | None = None,
        correlation_id: str | None = None,
    ) -> CloudEvent:
        """Queue an outbound event; it is written to the outbox in this batch's transaction."""
        correlation = correlation_id or (cause.correlation_id if cause else None)
        event = build_event(data, source=self.source, type_=type_, time=self.clock.now())
        spec = EVENT_TYPES[event.type]
        headers = {CORRELATION_HEADER: correlation} if correlation else {}
        key = str(getattr(data, spec.key_field))
        self.outbox.append(OutboxMessage(topic=spec.topic, key=key, event=event, headers=headers))
        return event


Handler = Callable[[BatchContext, Sequence[ConsumedEvent]], Awaitable[None]]


#: The idempotency record's key, as `processed_events` columns.
PROCESSED_KEY = ("source", "event_id")


def _recording(table: Table) -> Any:
    """Record a batch's events as processed, answering the ones the table did not hold yet: one
    statement whatever the batch's size (`insert_unnested`; 0.7 ms less client CPU a batch of
    20-300 than an executemany, docs/benchmarks.md)."""
    return insert_unnested(table, PROCESSED_KEY).on_conflict_do_nothing().returning(table.c.source, table.c.event_id)


class BatchConsumer:
    """Consume `topics` in group `group_id` and apply batches with `handler`."""

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        group_id: str,
        bootstrap_servers: str,
        sessions: async_sessionmaker[AsyncSession],
        processed_table: Table,
        outbox_table: Table,
        handler: Handler,
        producer: AIOKafkaProducer,
        clock: Clock,
        settings: ConsumerSettings,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.sessions = sessions
        self.processed_table = processed_table
        self.outbox_table = outbox_table
        self.handler = handler
        self.producer = producer
        self.clock = clock
        self.settings = settings
        self._record = _recording(processed_table)
        self._consumer: AIOKafkaConsumer | None = None
        self._log_ends: dict[TopicPartition, int] = {}  # the furthest end seen of each log, across restarts
        self._stopping = False
        self.healthy = False

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and leave the group."""
        self._stopping = True

    async def run(self) -> None:
        backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
        while not self._stopping:
            try:
                await self._start_consumer()
                backoff.reset()
                await self._poll_loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.healthy = False
                metrics.TRANSIENT_FAILURES.labels(component="consumer").inc()
                log.warning("consumer.restarting", extra={"group": self.group_id, "error": repr(exc)})
                await self._close_consumer()
                await asyncio.sleep(backoff.next_delay())
        await self._close_consumer()

    async def _start_consumer(self) -> None:
        if self._consumer is not None:
            return
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.name}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.max_batch,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=min(3000, self.settings.session_timeout_ms // 3),
        )
        await consumer.start()
        self._consumer = consumer
        self.healthy = True
        log.info("consumer.started", extra={"group": self.group_id, "topics": self.topics})

    async def _close_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception as exc:
                log.warning("consumer.stop_failed", extra={"group": self.group_id, "error": repr(exc)})

    async def _poll_loop(self) -> None:
        assert self._consumer is not None
        lag_measured = 0.0
        while not self._stopping:
            fetched = await self._consumer.getmany(
                timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_batch
            )
            records = [r for part in fetched.values() for r in part]
            if records:
                await self.process(records)
                await self._commit_offsets(records)
            if time.monotonic() - lag_measured >= LAG_INTERVAL_S:
                lag_measured = time.monotonic()
                await self._measure_lag()

    async def _measure_lag(self) -> None:
        """Consumer-group lag per assigned partition, for the `c360_consumer_lag` gauge; and a
        partition whose log went backwards read again from its beginning.

        A log's end never moves back on a broker that keeps its log; one that lost it (Tansu in
        memory mode, restarted) starts again from offset 0, answers a fetch past its end with
        nothing rather than OFFSET_OUT_OF_RANGE, and may accept the old member's heartbeats, so
        the consumer would wait at its old positions and skip every event produced below them.
        Kafka would reset such a position by `auto_offset_reset` ("earliest"); this does the
        same, and what is read twice the idempotent apply skips. (Tansu's end of a log can lag a
        consumer's position by a batch, so a position past the end is not the sign.)"""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        if not assigned:
            return
        try:
            ends = await consumer.end_offsets(assigned)
            shrunk = {tp: (self._log_ends[tp], ends[tp]) for tp in assigned if ends[tp] < self._log_ends.get(tp, 0)}
            self._log_ends.update(ends)
            if shrunk:
                log.warning(
                    "consumer.offset_reset",
                    extra={
                        "group": self.group_id,
                        "reason": "the log went backwards: the broker lost it",
                        "ends": {f"{tp.topic}/{tp.partition}": was_now for tp, was_now in shrunk.items()},
                    },
                )
                await consumer.seek_to_beginning(*shrunk)
            for tp in assigned:
                position = await consumer.position(tp)
                metrics.CONSUMER_LAG.labels(group=self.group_id, topic=tp.topic, partition=str(tp.partition)).set(
                    max(ends[tp] - position, 0)
                )
        except KafkaError as exc:  # a rebalance or a broker hiccup: measure next time
            log.debug("consumer.lag_unknown", extra={"group": self.group_id, "error": repr(exc)})

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Validate, dead-letter the invalid, and apply the valid records of one batch."""
        started = time.perf_counter()
        metrics.BATCH_SIZE.labels(group=self.group_id).observe(len(records))
        valid: list[ConsumedEvent] = []
        invalid: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        now, skew = self.clock.now(), timedelta(seconds=self.settings.max_clock_skew_s)
        for record in records:
            try:
                parsed = parse_event(record.value or b"", topic=record.topic)
            except InvalidEvent as exc:
                invalid.append((record, exc.reason))
                continue
            future = from_the_future(parsed, now, skew)
            if future is not None:
                invalid.append((record, future))
            else:
                valid.append(ConsumedEvent(parsed, record))
        for record, reason in invalid:
            await self._dead_letter(record, reason, _type_of(record.value))
        if valid:
            await self._apply_with_retry(valid)
        metrics.BATCH_SECONDS.labels(group=self.group_id).observe(time.perf_counter() - started)

    async def _apply_with_retry(self, events: Sequence[ConsumedEvent]) -> None:
        backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
        while True:
            try:
                await self._apply(events)
                self.healthy = True
                return
            except Exception as exc:
                if is_transient(exc):
                    self.healthy = False
                    metrics.TRANSIENT_FAILURES.labels(component="database").inc()
                    delay = backoff.next_delay()
                    log.warning(
                        "consumer.retrying",
                        extra={"group": self.group_id, "error": repr(exc), "delay_s": delay},
                    )
                    await asyncio.sleep(delay)
                    continue
                if len(events) == 1:
                    log.exception(
                        "consumer.event_failed",
                        extra={"group": self.group_id, "event_id": events[0].envelope.id},
                    )
                    await self._dead_letter(events[0].record, failure_reason(exc), events[0].type)
                    return
                log.warning(
                    "consumer.isolating_failure",
                    extra={"group": self.group_id, "batch": len(events), "error": repr(exc)},
                )
                break
        for event in events:
            await self._apply_with_retry([event])

    async def _apply(self, events: Sequence[ConsumedEvent]) -> None:
        unique: dict[tuple[str, str], ConsumedEvent] = {}
        for event in events:
            unique.setdefault(event.identity, event)
        async with transaction(self.sessions) as session:
            fresh = await self._record_processed(session, list(unique))
            new_events = [e for key, e in unique.items() if key in fresh]
            duplicates = len(events) - len(new_events)
            if duplicates:
                metrics.EVENTS_DUPLICATE.labels(group=self.group_id).inc(duplicates)
            if not new_events:
                return
            context = BatchContext(session=session, clock=self.clock, source=self.name)
            await self.handler(context, new_events)
            await write_outbox(session, self.outbox_table, context.outbox)
        committed_at = datetime.now(UTC)
        consumed = Counter((event.record.topic, event.type) for event in new_events)
        for (topic, type_), count in consumed.items():
            metrics.EVENTS_CONSUMED.labels(group=self.group_id, topic=topic, type=type_).inc(count)
        lag_of = {topic: metrics.EVENT_LAG_SECONDS.labels(group=self.group_id, topic=topic) for topic, _ in consumed}
        logging_applied = log.isEnabledFor(logging.INFO)
        for event in new_events:
            lag = (committed_at - event.envelope.time).total_seconds()
            lag_of[event.record.topic].observe(max(lag, 0.0))
            if logging_applied:
                token = correlation_id.set(event.correlation_id)
                try:
                    log.info(
                        "event.applied",
                        extra={
                            "group": self.group_id,
                            "topic": event.record.topic,
                            "type": event.type,
                            "event_id": event.envelope.id,
                            "key": (event.record.key or b"").decode("utf-8", "replace"),
                            "lag_s": round(max(lag, 0.0), 3),
                        },
                    )
                finally:
                    correlation_id.reset(token)

    async def _record_processed(self, session: AsyncSession, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        result = await session.execute(
            self._record, unnested_params(PROCESSED_KEY, [{"source": s, "event_id": e} for s, e in keys])
        )
        return {(row.source, row.event_id) for row in result}

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str, type_: str = "unknown") -> None:
        """Send the original bytes to `<topic>.dlq`, retrying until the broker takes them."""
        headers: Headers = [(k, v) for k, v in (record.headers or ()) if k not in DLQ_HEADERS]
        headers += [
            (DLQ_REASON_HEADER, reason[:MAX_REASON_LENGTH].encode("utf-8", "replace")),
            (DLQ_TOPIC_HEADER, record.topic.encode()),
            (DLQ_PARTITION_HEADER, str(record.partition).encode()),
            (DLQ_OFFSET_HEADER, str(record.offset).encode()),
            (DLQ_GROUP_HEADER, self.group_id.encode()),
            (DLQ_AT_HEADER, datetime.now(UTC).isoformat().encode()),
        ]
        backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
        while True:
            try:
                await self.producer.send_and_wait(
                    dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
                )
                break
            except KafkaError as exc:
                metrics.TRANSIENT_FAILURES.labels(component="dlq").inc()
                log.warning("dlq.retrying", extra={"group": self.group_id, "error": repr(exc)})
                await asyncio.sleep(backoff.next_delay())
        metrics.EVENTS_DEAD_LETTERED.labels(group=self.group_id, topic=record.topic, type=type_).inc()
        log.warning(
            "event.dead_lettered",
            extra={
                "group": self.group_id,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason[:300],
            },
        )

    async def _commit_offsets(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        assert self._consumer is not None
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner re-reads these and skips them
            # through the idempotency record.
            log.warning("consumer.commit_skipped", extra={"group": self.group_id, "error": repr(exc)})
