"""Periodic jobs: work that falls due by the clock rather than by an event.

A tier whose grace period ends, a birthday, the daily roll-forward of the 30-day average AUM:
nothing arrives on a topic for them, so each service registers jobs that run on an interval.
Every round runs in one transaction that holds a transaction-scoped advisory lock named after
the job, so with several replicas exactly one does a round and the others skip it; what the
job publishes goes through the outbox in that same transaction. Jobs use the service's clock,
so tests move time through the same injectable source as the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runtime import metrics
from runtime.clock import Clock
from runtime.consumer import BatchContext
from runtime.db import transaction
from runtime.outbox import write_outbox
from runtime.transient import Backoff, is_transient

log = logging.getLogger(__name__)

#: A job round: do at most one chunk of due work; answer True when more is due right now.
JobRound = Callable[[BatchContext], Awaitable[bool]]


@dataclass(frozen=True)
class PeriodicJob:
    """A named job and how often to look for due work."""

    name: str
    interval_s: float
    run: JobRound


def job_lock_key(service: str, job: str) -> int:
    """A stable 31-bit advisory lock key for one job of one service."""
    return zlib.crc32(f"c360-job:{service}:{job}".encode()) & 0x7FFFFFFF


class JobRunner:
    """Runs one periodic job until stopped; a failed round is logged and retried later."""

    def __init__(
        self,
        *,
        service: str,
        job: PeriodicJob,
        sessions: async_sessionmaker[AsyncSession],
        outbox_table: Table,
        clock: Clock,
    ) -> None:
        self.service = service
        self.job = job
        self.sessions = sessions
        self.outbox_table = outbox_table
        self.clock = clock
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run_once(self) -> bool:
        """One round under the job's lock. True when the round found more work due now."""
        async with transaction(self.sessions) as session:
            locked = await session.scalar(
                select(func.pg_try_advisory_xact_lock(job_lock_key(self.service, self.job.name)))
            )
            if not locked:
                metrics.JOB_ROUNDS.labels(job=self.job.name, outcome="skipped").inc()
                return False
            context = BatchContext(session=session, clock=self.clock, source=self.service)
            more = await self.job.run(context)
            await write_outbox(session, self.outbox_table, context.outbox)
        metrics.JOB_ROUNDS.labels(job=self.job.name, outcome="done").inc()
        return more

    async def run(self) -> None:
        backoff = Backoff(1.0, max(self.job.interval_s, 1.0))
        while not self._stopping.is_set():
            delay = self.job.interval_s
            try:
                if await self.run_once():
                    delay = 0.0
                backoff.reset()
            except Exception as exc:
                outcome = "transient" if is_transient(exc) else "failed"
                metrics.JOB_ROUNDS.labels(job=self.job.name, outcome=outcome).inc()
                log.warning(
                    "job.round_failed",
                    extra={"service": self.service, "job": self.job.name, "error": type(exc).__name__},
                    exc_info=outcome == "failed",
                )
                delay = backoff.next_delay()
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            else:
                await asyncio.sleep(0)
