"""The shared database plumbing against the real PostgreSQL: the pool's bound, read sessions, and
one-statement reads on the driver."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Column, DateTime, MetaData, Numeric, Table, Text, bindparam, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError

from runtime.db import (
    NestedRows,
    OneStatementRead,
    create_engine,
    one_of,
    read_session_factory,
    session_factory,
    transaction,
    upsert_rows,
)
from runtime.transient import is_transient

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


PROBE = Table(
    "driver_read_probe",
    MetaData(),
    Column("id", Text, primary_key=True),
    Column("amount", Numeric),
    Column("at", DateTime(timezone=True)),
    Column("kind", Text),
)
_PROBE_NESTED = NestedRows(
    "nested", (PROBE.c.kind, PROBE.c.amount), (PROBE.c.kind.in_([literal("a"), literal("b")]),), (PROBE.c.id,)
)
_PROBE_READ = OneStatementRead(
    select(
        PROBE.c.id,
        PROBE.c.amount,
        (literal(1) / PROBE.c.amount).label("inverse"),
        _PROBE_NESTED.column(),
        func.array(select(PROBE.c.id).order_by(PROBE.c.id).scalar_subquery()).label("ids"),
    ).where(PROBE.c.id == bindparam("id")),
    nested=(_PROBE_NESTED,),
)


async def test_a_one_statement_read_answers_typed_rows_keeps_a_refused_connection_and_replaces_a_lost_one(
    migrated_database: str,
) -> None:
    engine = create_engine(migrated_database, pool_size=1)
    at = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(PROBE.drop, checkfirst=True)
            await conn.run_sync(PROBE.create)
            await conn.execute(
                PROBE.insert(),
                [
                    {"id": "x", "amount": Decimal("1234.50"), "at": at, "kind": "a"},
                    {"id": "y", "amount": Decimal("0.10"), "at": at, "kind": "b"},
                    {"id": "z", "amount": Decimal("0"), "at": at, "kind": "c"},
                ],
            )
        row = await _PROBE_READ.one_or_none(engine, id="x")
        assert row is not None
        assert (row.id, row.amount, row.inverse.quantize(Decimal("0.000001"))) == (
            "x",
            Decimal("1234.50"),
            Decimal("0.000810"),
        )
        # nested rows as dicts, in order, exact and typed; a plain array stays a list
        assert row.nested == [{"kind": "a", "amount": Decimal("1234.50")}, {"kind": "b", "amount": Decimal("0.10")}]
        assert row.ids == ["x", "y", "z"]
        assert await _PROBE_READ.one_or_none(engine, id="nobody") is None
        with pytest.raises(TypeError, match="no value for id"):
            await _PROBE_READ.one_or_none(engine)

        async with engine.connect() as conn:
            pid = await conn.scalar(BACKEND)
        with pytest.raises(asyncpg.DivisionByZeroError) as refused:
            await _PROBE_READ.one_or_none(engine, id="z")
        assert not is_transient(refused.value)  # bad data, not an outage
        async with engine.connect() as conn:
            assert await conn.scalar(BACKEND) == pid, "a statement the server refused leaves the connection pooled"

        async with create_engine(migrated_database, pool_size=1).begin() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        failure: Exception | None = None
        try:  # the pool may notice the closed socket at checkout, or the read may find it
            await _PROBE_READ.one_or_none(engine, id="y")
        except Exception as exc:
            failure = exc
        assert failure is None or is_transient(failure), f"a lost connection is an outage: {failure!r}"
        row = await _PROBE_READ.one_or_none(engine, id="y")
        assert row is not None
        assert row.amount == Decimal("0.10")
        async with engine.connect() as conn:
            assert await conn.scalar(BACKEND) != pid, "the lost connection was replaced"
            await conn.run_sync(PROBE.drop)
            await conn.commit()
    finally:
        await engine.dispose()


_SLEEP = OneStatementRead(
    select(func.pg_sleep(bindparam("seconds")).label("slept"), func.pg_backend_pid().label("pid"))
)


async def test_a_one_statement_read_cut_off_mid_statement_is_discarded_and_the_pool_goes_on(
    migrated_database: str,
) -> None:
    """A read cancelled while the server works on it (a timeout, a client gone) leaves the
    connection with an answer still to come: it is closed, not pooled, and the pool of one
    serves the next read on a new connection."""
    engine = create_engine(migrated_database, pool_size=1)
    try:
        first = await _SLEEP.one_or_none(engine, seconds=0)
        assert first is not None
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await _SLEEP.one_or_none(engine, seconds=5)
        async with asyncio.timeout(2):  # the pool's one connection is free again at once
            after = await _SLEEP.one_or_none(engine, seconds=0)
        assert after is not None
        assert after.pid != first.pid, "the cut-off connection was replaced"
        again = await _SLEEP.one_or_none(engine, seconds=0)
        assert again is not None
        assert again.pid == after.pid, "a read that finished returns its connection to the pool"
    finally:
        await engine.dispose()


def test_a_one_statement_read_refuses_an_in_it_cannot_compile_once() -> None:
    with pytest.raises(ValueError, match="expanding IN"):
        OneStatementRead(select(PROBE.c.id).where(PROBE.c.kind.in_(["a", "b"])))


ONE_OF_PROBE = Table("one_of_probe", MetaData(), Column("id", Text, primary_key=True), Column("n", Numeric))


async def test_one_of_reads_the_named_rows_with_one_statement_whatever_their_number(migrated_database: str) -> None:
    engine = create_engine(migrated_database, pool_size=1)
    sessions = session_factory(engine)
    everyone = [f"C{i:06d}" for i in range(40_000)]  # above the 32,767 parameters an IN list may carry
    try:
        async with transaction(sessions) as session:
            await session.run_sync(lambda s: ONE_OF_PROBE.create(s.connection(), checkfirst=True))
            await session.execute(ONE_OF_PROBE.insert(), [{"id": cid, "n": i} for i, cid in enumerate(everyone)])
            await session.execute(text("ANALYZE one_of_probe"))

        def reading(ids: list[str]) -> Any:
            return select(ONE_OF_PROBE.c.id).where(one_of(ONE_OF_PROBE.c.id, ids))

        async with transaction(sessions) as session:
            for wanted in ([], ["C000007"], ["C000007", "C000007", "nobody"], everyone[::3], everyone):
                found = (await session.scalars(reading(wanted))).all()
                assert sorted(found) == sorted(set(wanted) & set(everyone))
            # One statement text for every length: compiled once, prepared once per connection.
            texts = {str(reading(everyone[:n]).compile(engine.sync_engine)) for n in (1, 2, 500)}
            assert len(texts) == 1
            # Never the row-by-row `= ANY($1)` filter, even in the plan PostgreSQL keeps for any array.
            await session.execute(text(f"PREPARE one_of_read(text[]) AS {texts.pop()}"))
            await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
            plan = "\n".join(await session.scalars(text("EXPLAIN EXECUTE one_of_read(ARRAY['C000007'])")))
            assert "unnest" in plan, plan
            assert "ANY" not in plan, plan
            await session.execute(text("DEALLOCATE one_of_read"))
    finally:
        async with transaction(sessions) as session:
            await session.execute(text("DROP TABLE IF EXISTS one_of_probe"))
        await engine.dispose()


UPSERT_PROBE = Table(
    "upsert_probe",
    MetaData(),
    Column("id", Text, primary_key=True),
    Column("amount", Numeric(24, 2)),
    Column("at", DateTime(timezone=True)),
    Column("flags", ARRAY(Text)),
    Column("doc", JSONB),
    Column("note", Text),
)


async def test_upsert_rows_writes_each_kind_of_column_as_given_and_the_last_of_a_repeated_key(
    migrated_database: str,
) -> None:
    engine = create_engine(migrated_database, pool_size=1)
    sessions = session_factory(engine)
    at = datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
    odd = ['a "quoted", {braced} flag', "NULL", "", "\\back"]  # what an array literal would mangle
    given = [
        {"id": "A", "amount": Decimal("12345678901234567890.12"), "at": at, "flags": odd, "doc": {"k": [1, "x"]}},
        {"id": "B", "amount": Decimal("-0.50"), "at": None, "flags": [], "doc": [{"reason": "r"}]},
        {"id": "C", "amount": None, "at": at, "flags": None, "doc": None},
    ]

    async def stored() -> dict[str, tuple[Any, ...]]:
        async with transaction(sessions) as session:
            rows = await session.execute(select(UPSERT_PROBE).order_by(UPSERT_PROBE.c.id))
            return {r.id: tuple(r)[1:] for r in rows}

    def upsert(rows: list[dict[str, Any]]) -> Any:
        update = ["amount", "at", "flags", "doc"]
        return upsert_rows(session, UPSERT_PROBE, rows, keys=["id"], update=update)

    try:
        async with transaction(sessions) as session:
            await session.run_sync(lambda s: UPSERT_PROBE.create(s.connection(), checkfirst=True))
            await session.execute(UPSERT_PROBE.insert(), [{"id": "B", "note": "kept"}])
        async with transaction(sessions) as session:
            await upsert(given)
        assert await stored() == {
            "A": (Decimal("12345678901234567890.12"), at, odd, {"k": [1, "x"]}, None),
            "B": (Decimal("-0.50"), None, [], [{"reason": "r"}], "kept"),  # an update leaves other columns
            "C": (None, at, None, None, None),
        }
        async with transaction(sessions) as session:
            later = {"id": "A", "amount": Decimal("1.00"), "at": at, "flags": ["late"], "doc": {}}
            await upsert([{**later, "flags": ["early"]}, later, {**given[2], "flags": ["c"]}])
        after = await stored()
        assert after["A"] == (Decimal("1.00"), at, ["late"], {}, None)  # the last of the repeated key
        assert after["C"] == (None, at, ["c"], None, None)
        async with transaction(sessions) as session:
            await upsert([])  # nothing to write: no statement
        assert await stored() == after
    finally:
        async with transaction(sessions) as session:
            await session.execute(text("DROP TABLE IF EXISTS upsert_probe"))
        await engine.dispose()
