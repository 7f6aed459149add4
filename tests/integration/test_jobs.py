"""Periodic jobs against the real database: one replica per round, effects and outbox together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CustomerErased
from runtime.clock import FixedClock
from runtime.consumer import BatchContext
from runtime.db import add_runtime_tables, create_engine, runtime_table, session_factory
from runtime.jobs import JobRunner, PeriodicJob

SCHEMA = "jobs_test"
metadata = MetaData(schema=SCHEMA)
add_runtime_tables(metadata)
rounds = Table("rounds", metadata, Column("n", Integer, nullable=False))


@pytest.fixture
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


def runner(engine: AsyncEngine, job: PeriodicJob) -> JobRunner:
    return JobRunner(
        service="jobs-test",
        job=job,
        sessions=session_factory(engine),
        outbox_table=runtime_table(metadata, "outbox"),
        clock=FixedClock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC)),
    )


async def test_two_replicas_never_run_the_same_round_at_once(engine: AsyncEngine) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow_round(ctx: BatchContext) -> bool:
        await ctx.session.execute(insert(rounds).values(n=1))
        entered.set()
        await release.wait()
        return False

    job = PeriodicJob("sweep", 60, slow_round)
    first = asyncio.create_task(runner(engine, job).run_once())
    await entered.wait()
    second = await runner(engine, job).run_once()  # the lock is held: this replica skips the round
    release.set()
    await first
    assert second is False
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(rounds)) == 1


async def test_a_round_publishes_through_the_outbox_in_its_own_transaction(engine: AsyncEngine) -> None:
    async def erase_one(ctx: BatchContext) -> bool:
        ctx.publish(CustomerErased(customer_id="C1", erased_at=ctx.clock.now()))
        return False

    await runner(engine, PeriodicJob("erase", 60, erase_one)).run_once()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(runtime_table(metadata, "outbox")))).all()
    assert [(r.topic, r.message_key) for r in rows] == [("c360.profiles.v1", "C1")]


async def test_a_failed_round_leaves_no_effect_and_the_runner_keeps_going(engine: AsyncEngine) -> None:
    calls = 0
    recovered = asyncio.Event()

    async def flaky(ctx: BatchContext) -> bool:
        nonlocal calls
        calls += 1
        await ctx.session.execute(insert(rounds).values(n=calls))
        if calls == 1:
            raise RuntimeError("boom")
        recovered.set()
        return False

    job_runner = runner(engine, PeriodicJob("flaky", 0.05, flaky))
    task = asyncio.create_task(job_runner.run())
    await asyncio.wait_for(recovered.wait(), timeout=10)
    job_runner.stop()
    await task
    async with engine.connect() as conn:
        assert list((await conn.execute(select(rounds.c.n))).scalars()) == [2]
