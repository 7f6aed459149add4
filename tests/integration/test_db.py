"""The shared database plumbing against the real PostgreSQL: the pool's bound, read sessions."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from runtime.db import create_engine, read_session_factory, session_factory, transaction

BACKEND = text("SELECT pg_backend_pid()")
ISOLATION = text("SHOW transaction_isolation")
READ_ONLY = text("SHOW transaction_read_only")
COUNT = text("SELECT count(*) FROM read_snapshot_probe")


async def test_a_read_session_reads_one_snapshot_refuses_writes_and_leaves_the_pool_as_it_was(
    migrated_database: str,
) -> None:
    engine = create_engine(migrated_database, pool_size=1)  # one connection: every session shares it
    other = create_engine(migrated_database, pool_size=1)
    writer = session_factory(engine)
    try:
        async with transaction(writer) as session:
            await session.execute(text("DROP TABLE IF EXISTS read_snapshot_probe"))
            await session.execute(text("CREATE TABLE read_snapshot_probe (n int)"))
            await session.execute(text("INSERT INTO read_snapshot_probe VALUES (1)"))

        async with read_session_factory(engine)() as session:
            reader = await session.scalar(BACKEND)
            assert (await session.scalar(ISOLATION), await session.scalar(READ_ONLY)) == ("repeatable read", "on")
            assert await session.scalar(COUNT) == 1
            async with other.begin() as conn:  # a commit between two reads of the session...
                await conn.execute(text("INSERT INTO read_snapshot_probe VALUES (2)"))
            assert await session.scalar(COUNT) == 1  # ...is not seen: both read one snapshot
            with pytest.raises(DBAPIError, match="read-only transaction"):
                await session.execute(text("INSERT INTO read_snapshot_probe VALUES (3)"))

        async with transaction(writer) as session:
            assert await session.scalar(BACKEND) == reader, "the test needs the same pooled connection"
            assert (await session.scalar(ISOLATION), await session.scalar(READ_ONLY)) == ("read committed", "off")
            assert await session.scalar(COUNT) == 2
            await session.execute(text("DROP TABLE read_snapshot_probe"))
    finally:
        await other.dispose()
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
