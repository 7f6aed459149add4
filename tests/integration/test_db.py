"""The shared database plumbing against the real PostgreSQL: the pool's bound, read sessions."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import text

from runtime.db import create_engine, read_session_factory, session_factory, transaction

XACT = text("SELECT pg_current_xact_id()::text")  # assigns the statement's transaction an id
BACKEND = text("SELECT pg_backend_pid()")


async def test_a_read_session_runs_each_statement_on_its_own_and_the_pool_stays_transactional(
    migrated_database: str,
) -> None:
    engine = create_engine(migrated_database, pool_size=1)  # one connection: both sessions share it
    try:
        async with read_session_factory(engine)() as session:
            reader = await session.scalar(BACKEND)
            first, second = await session.scalar(XACT), await session.scalar(XACT)
        assert first != second, "a read session must not hold a transaction open across statements"

        async with transaction(session_factory(engine)) as session:
            assert await session.scalar(BACKEND) == reader, "the test needs the same pooled connection"
            first, second = await session.scalar(XACT), await session.scalar(XACT)
        assert first == second, "autocommit leaked into the pool: a unit of work is no longer one transaction"
    finally:
        await engine.dispose()


async def test_the_pool_opens_no_connections_beyond_its_size(migrated_database: str) -> None:
    engine = create_engine(migrated_database, pool_size=2)
    try:
        async with contextlib.AsyncExitStack() as held:
            pids = {await (await held.enter_async_context(engine.connect())).scalar(BACKEND) for _ in range(2)}
            assert len(pids) == 2
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await engine.connect().start()  # waits for a pooled connection, opens none
        async with engine.connect() as conn:  # one returned: the waiter's turn comes
            assert await conn.scalar(BACKEND) in pids
    finally:
        await engine.dispose()
