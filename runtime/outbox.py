"""Transactional outbox: events are written with the state change and published after commit.

Writers add rows in the caller's transaction. The relay claims pending rows with
`FOR UPDATE SKIP LOCKED` under a per-service advisory lock taken in the same statement (so one
relay at a time publishes and a customer's events keep their order), produces them, and marks
them published in the same transaction. A crash between produce and mark re-publishes:
downstream consumers are idempotent on `(source, id)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import CloudEvent
from runtime import metrics
from runtime.db import OUTBOX_WRITTEN, insert_unnested, one_of, transaction, unnested_params
from runtime.settings import OutboxSettings
from runtime.transient import Backoff, is_transient

log = logging.getLogger(__name__)

CORRELATION_HEADER = "c360-correlation-id"


@dataclass(frozen=True)
class OutboxMessage:
    """One event to publish once the transaction that wrote it commits."""

    topic: str
    key: str
    event: CloudEvent
    headers: dict[str, str] = field(default_factory=dict)


async def write_outbox(
    session: AsyncSession, table: Table, messages: Sequence[OutboxMessage], *, within_s: float = 0.0
) -> None:
    """Insert `messages` into the outbox inside the caller's transaction. Once it commits
    (`runtime.db.transaction`) the relay is woken to publish them at once, or within `within_s`
    seconds: writers that commit many times a second (the gateway's audit) let one relay round
    serve many commits."""
    if not messages:
        return
    session.info[OUTBOX_WRITTEN] = min(within_s, session.info.get(OUTBOX_WRITTEN, within_s))
    rows = [
        {"topic": m.topic, "message_key": m.key, "payload": m.event.to_bytes(), "headers": m.headers} for m in messages
    ]
    await session.execute(_insert_statement(table), unnested_params(OUTBOX_COLUMNS, rows))


OUTBOX_COLUMNS = ("topic", "message_key", "payload", "headers")


@functools.lru_cache(maxsize=16)
def _insert_statement(table: Table) -> Any:
    """One statement for any number of messages, from arrays: an executemany ran one execution
    per row. The ids (the order the relay publishes in) follow the messages' order: the rows
    are inserted in the order of the arrays."""
    return insert_unnested(table, OUTBOX_COLUMNS)


class OutboxRelay:
    """Publishes pending outbox rows to Kafka: woken by the commits that wrote them, and polling
    every `idle_poll_s` for rows no wake announced (another replica's, or left by a crash)."""

    def __init__(
        self,
        *,
        name: str,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        producer: AIOKafkaProducer,
        settings: OutboxSettings,
    ) -> None:
        self.name = name
        self.sessions = sessions
        self.table = table
        self.producer = producer
        self.settings = settings
        self.lock_key = zlib.crc32(f"c360-outbox:{table.fullname}".encode())
        # The lock and the claim in one statement, one round trip before the produce: the lock's
        # CTE calls a volatile function, so PostgreSQL runs it once, and without the lock (another
        # relay holds it) the claim finds no rows, as when none are pending (so such a replica
        # reports no backlog; the one publishing reports it). Built once: the same every round.
        lock = select(func.pg_try_advisory_xact_lock(self.lock_key).label("held")).cte("relay_lock")
        self._claim = (
            select(table.c.id, table.c.topic, table.c.message_key, table.c.payload, table.c.headers, table.c.created_at)
            .select_from(table.join(lock, lock.c.held))
            .where(table.c.published_at.is_(None))
            .order_by(table.c.id)
            .limit(settings.batch_size)
            .with_for_update(of=table, skip_locked=True)
        )
        self._wake = asyncio.Event()
        self._wake_later: asyncio.TimerHandle | None = None
        self._stopping = False
        self.healthy = True
        self._last_purge = datetime.min.replace(tzinfo=UTC)

    def wake(self, within_s: float = 0.0) -> None:
        """Ask the relay to look for new rows now, or within `within_s` seconds: the wakes that
        arrive while one is pending are that one (called after a commit that wrote rows)."""
        if within_s <= 0:
            self._wake.set()
        elif self._wake_later is None:
            self._wake_later = asyncio.get_running_loop().call_later(within_s, self._woken_later)

    def _woken_later(self) -> None:
        self._wake_later = None
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        if self._wake_later is not None:
            self._wake_later.cancel()
            self._wake_later = None
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(0.2, 10.0)
        purge: asyncio.Task[None] | None = None
        try:
            while not self._stopping:
                published = await self._publish_round(backoff)
                if published is None:
                    continue
                if (purge is None or purge.done()) and self._purge_due():
                    # Beside the publishing, never in its way: on a large outbox the purge's scan
                    # takes long enough to delay every event behind it.
                    purge = asyncio.create_task(self._purge_published(), name=f"{self.name}-outbox-purge")
                if published < self.settings.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.settings.idle_poll_s)
                    self._wake.clear()
        finally:
            if purge is not None and not purge.done():
                purge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purge

    async def _publish_round(self, backoff: Backoff) -> int | None:
        """One round of publishing: how many rows went out, or None after a failure (waited out)."""
        try:
            published = await self.publish_pending()
        except Exception as exc:
            if is_transient(exc):
                log.warning("outbox.unavailable", extra={"relay": self.name, "error": repr(exc)})
                metrics.TRANSIENT_FAILURES.labels(component="outbox").inc()
            else:
                log.exception("outbox.publish_failed", extra={"relay": self.name})
            self.healthy = False
            await asyncio.sleep(backoff.next_delay())
            return None
        self.healthy = True
        backoff.reset()
        return published

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        t = self.table
        async with transaction(self.sessions) as session:
            rows = (await session.execute(self._claim)).all()
            if not rows:
                metrics.OUTBOX_BACKLOG.set(0)
                return 0
            deliveries = [
                await self.producer.send(
                    row.topic,
                    value=row.payload,
                    key=row.message_key.encode(),
                    headers=[(k, str(v).encode()) for k, v in (row.headers or {}).items()],
                )
                for row in rows
            ]
            await asyncio.gather(*deliveries)
            published = one_of(t.c.id, [row.id for row in rows])
            await session.execute(update(t).where(published).values(published_at=func.now()))
            # Rows left behind a full batch are the backlog; a short batch drained what was there.
            backlog = 0
            if len(rows) == self.settings.batch_size:
                backlog = await session.scalar(select(func.count()).where(t.c.published_at.is_(None))) or 0
        metrics.OUTBOX_BACKLOG.set(backlog)
        now = datetime.now(UTC)
        for topic, count in Counter(row.topic for row in rows).items():
            metrics.OUTBOX_PUBLISHED.labels(topic=topic).inc(count)
        for row in rows:
            metrics.OUTBOX_PUBLISH_SECONDS.observe(max(0.0, (now - row.created_at).total_seconds()))
        return len(rows)

    def _purge_due(self) -> bool:
        """Whether the purge interval has passed since the last purge began (if so, one begins now)."""
        now = datetime.now(UTC)
        if now - self._last_purge < timedelta(seconds=self.settings.purge_interval_s):
            return False
        self._last_purge = now
        return True

    async def _purge_published(self) -> None:
        """Delete rows published longer ago than the retention; a failure is logged and tried
        again next time."""
        cutoff = datetime.now(UTC) - timedelta(hours=self.settings.retention_hours)
        try:
            async with transaction(self.sessions) as session:
                await session.execute(
                    delete(self.table).where(self.table.c.published_at.is_not(None), self.table.c.published_at < cutoff)
                )
        except Exception as exc:
            log.warning("outbox.purge_failed", extra={"relay": self.name, "error": repr(exc)})
