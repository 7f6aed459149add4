"""`c360 rescore`: recompute every customer's tier and scores from the stored profile figures.

Run it after changing the policy or score model file (and restarting the service with it):
customers are taken in id order, a batch per transaction, through the same assessor as the
consumer, so only real changes are published (through the outbox; the running service's relay
sends them). A policy change does not bypass the exit mechanism: a customer now below the floor
of the tier they hold goes on watch; one whose tier no longer exists is reassigned at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.clock import Clock, SystemClock
from runtime.consumer import BatchContext
from runtime.db import create_engine, runtime_table, session_factory
from runtime.jobs import JobRunner, PeriodicJob
from services.scoring.assessor import Assessor, stored_subject
from services.scoring.models import Base
from services.scoring.store import ScoringStore


@dataclass
class RescoreProgress:
    customers: int = 0
    published: int = 0
    after: str = ""


def rescore_job(assessor: Assessor, batch: int, progress: RescoreProgress) -> PeriodicJob:
    async def round_(ctx: BatchContext) -> bool:
        store = ScoringStore(ctx.session)
        rows = await store.page(progress.after, batch)
        await assessor.assess(ctx, store, [stored_subject(row) for row in rows])
        if rows:
            progress.after = rows[-1].customer_id
        progress.customers += len(rows)
        progress.published += len(ctx.outbox)
        return len(rows) == batch

    return PeriodicJob(name="rescore", interval_s=0, run=round_)


async def rescore(database_url: str, assessor: Assessor, batch: int, clock: Clock | None = None) -> RescoreProgress:
    """Re-score every customer; returns how many were assessed and how many events were queued."""
    engine = create_engine(database_url, pool_size=1)
    progress = RescoreProgress()
    runner = JobRunner(
        service="scoring",
        job=rescore_job(assessor, batch, progress),
        sessions=session_factory(engine),
        outbox_table=runtime_table(Base.metadata, "outbox"),
        clock=clock or SystemClock(),
    )
    try:
        while await runner.run_once():
            pass
    finally:
        await engine.dispose()
    return progress
