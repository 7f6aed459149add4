"""Database plumbing: the async engine, sessions, and the tables every service owns.

Each service keeps its tables in its own PostgreSQL schema. Besides its own tables each one
has an idempotency table (`processed_events`) and a transactional outbox (`outbox`), defined
here once so no service copies them.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from pydantic_core import from_json, to_json
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    bindparam,
    case,
    cast,
    event,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import greenlet_spawn

from contracts import JsonText
from runtime.settings import to_async_url

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """Metadata for a service's schema that already holds the runtime tables.

    A service declares `class Base(DeclarativeBase): metadata = service_metadata("name")`.
    """
    metadata = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)
    add_runtime_tables(metadata)
    return metadata


def add_runtime_tables(metadata: MetaData) -> None:
    """Define `processed_events` and `outbox` in `metadata`."""
    Table(
        "processed_events",
        metadata,
        Column("source", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("source", "event_id"),
    )
    Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("topic", Text, nullable=False),
        Column("message_key", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL")),
    )


def one_of(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (SELECT unnest($1))` with the values as one array parameter: the same statement
    text, one compiled statement and one prepared plan whatever the number of values.

    An `IN` list is rendered again for every execution and is a new statement for PostgreSQL (and
    for asyncpg's prepared-statement cache) at every new length; for 300-900 ids it cost 5-6 ms
    of client CPU a query, against 3.5 ms with the array unnested. It is unnested, not compared with
    `= ANY($1)`: on a table scan PostgreSQL tests each row against a parameter array one element
    at a time (it hashes only constant arrays), and profile's accounts read took 20 ms for 200
    customers that way; a semi-join of the unnested array is hashed or walks the index."""
    array = bindparam(None, list(values), type_=ARRAY(column.type))
    return column.in_(select(func.unnest(array)))  # type: ignore[no-any-return]


def unnested(*columns: str | Column[Any], values: Sequence[Sequence[Any]] | None = None) -> Any:
    """Arrays as a derived table with one column per entry of `columns` (`unnest($1, $2, ...)`): a
    name is a text column, a table's column lends its name and type. Each array is bound as
    `<name>s`: with `values` (one sequence per column) now, else when the statement is executed.
    Joined or inserted from, it takes any number of rows with one statement text (a VALUES or
    row-value IN list is compiled and prepared anew for each length, and planned as an OR of every
    row).

    An array column's values are bound as JSON (`unnest` would flatten an array of arrays into
    one): `unnested_value` turns one back into the column's array."""
    named = [(c, Text()) if isinstance(c, str) else (c.name, c.type) for c in columns]
    binds = [
        # One dimension: a list in a JSON column's values is a value, not a row of a nested array.
        bindparam(f"{name}s", None if values is None else list(values[i]), type_=ARRAY(_bound(type_), dimensions=1))
        for i, (name, type_) in enumerate(named)
    ]
    return func.unnest(*binds).table_valued(*(name for name, _ in named)).render_derived()


def _bound(type_: Any) -> Any:
    """The type a column's values are bound as in `unnested`: an array as JSON, else its own."""
    return JSONB() if isinstance(type_, ARRAY) else type_


def unnested_value(column: Column[Any], value: Any) -> Any:
    """The value for `column` from its `unnested` counterpart `value`: itself, or for an array
    column the JSON array's elements in order (NULL for a JSON null)."""
    if not isinstance(column.type, ARRAY):
        return value
    elements = func.jsonb_array_elements_text(value).table_valued("value", with_ordinality="n").render_derived()
    items = select(elements.c.value).order_by(elements.c.n).scalar_subquery()
    return case((func.jsonb_typeof(value) == "array", cast(func.array(items), column.type)))


def insert_unnested(table: Table, names: Sequence[str]) -> Any:
    """`INSERT INTO table (names...) SELECT ... FROM unnest(...)`: rows bound as one array per
    column (`unnested`, typed by the table's columns), so one statement for any number of rows,
    where an executemany runs one execution per row (and one with RETURNING goes out as a VALUES
    list of each batch's length). The caller adds its ON CONFLICT and RETURNING;
    `unnested_params` binds the rows."""
    rows = unnested(*(table.c[name] for name in names))
    return pg_insert(table).from_select(
        list(names), select(*(unnested_value(table.c[name], rows.c[name]) for name in names))
    )


def update_unnested(table: Table, keys: Sequence[str], names: Sequence[str], *others: Column[Any]) -> tuple[Any, Any]:
    """`UPDATE table SET name = u.name, ... FROM unnest(...) AS u WHERE table.key = u.key`: one
    statement for any number of rows, where an executemany runs one execution per row. Each
    row's `keys` must name one table row (PostgreSQL applies one of several matches). `others`
    are more arrays, columns of no table, for the caller's own SET clauses: it gets the
    statement and the unnested table (`rows.c.<name>`); `unnested_params` binds the rows."""
    rows = unnested(*(table.c[name] for name in (*keys, *names)), *others)
    statement = (
        update(table)
        .where(*(table.c[key] == rows.c[key] for key in keys))
        .values({name: unnested_value(table.c[name], rows.c[name]) for name in names})
    )
    return statement, rows


def unnested_params(names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The arrays of an `unnested(*names)` table holding `rows`: a key a row lacks is NULL, as
    in an executemany."""
    return {f"{name}s": [row.get(name) for row in rows] for name in names}


def runtime_table(metadata: MetaData, name: str) -> Table:
    """Look up one of the runtime tables by its bare name."""
    return metadata.tables[f"{metadata.schema}.{name}" if metadata.schema else name]


def create_engine(database_url: str, *, pool_size: int = 15) -> AsyncEngine:
    """Build the async engine; call it in a lifespan, never at import time.

    The pool keeps `pool_size` connections and opens no others: SQLAlchemy closes an overflow
    connection as soon as it is returned to a full pool, so with overflow allowed a load a little
    above the pool's size opened and closed a PostgreSQL connection (a server process) for most
    requests (at 32 concurrent gateway views: 500-700 connections in 15 s, none without it; see
    docs/benchmarks.md).

    A pooled connection the server has closed (a restart, an idle timeout) is replaced when it is
    checked out, from what the driver already knows: no `pool_pre_ping`, which on asyncpg costs
    three round trips (BEGIN, a ping, ROLLBACK) on every checkout, every request and batch. A
    connection lost without the driver noticing fails its statement as a transient error (503,
    or a consumer retry), and SQLAlchemy then recycles the whole pool.
    """
    engine = create_async_engine(
        to_async_url(database_url),
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
        # JSONB columns are written and read with pydantic-core's (Rust) JSON, not the stdlib's.
        json_serializer=_json_text,
        json_deserializer=from_json,
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """Pool checkout hook: a connection whose socket is closed is discarded and the pool tries a
    new one (SQLAlchemy's documented use of DisconnectionError)."""
    driver_connection = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(driver_connection, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _json_text(value: Any) -> str:
    """A JSON column's value as text: `JsonText` is JSON already and written as it is."""
    if isinstance(value, JsonText):
        return value
    return to_json(value).decode()


#: `session.info` keys: a transaction wrote outbox rows, to be published within so many seconds
#: (`runtime.outbox.write_outbox`); and the factory's callback told of that after the commit.
OUTBOX_WRITTEN = "c360.outbox_written"
ON_OUTBOX_COMMIT = "c360.on_outbox_commit"


def session_factory(
    engine: AsyncEngine, *, on_outbox_commit: Callable[[float], None] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that do not expire loaded objects on commit (they are read after it).

    `on_outbox_commit` (the service's relay) is called after every `transaction` that wrote
    outbox rows has committed, with how soon they should be published."""
    info = {} if on_outbox_commit is None else {ON_OUTBOX_COMMIT: on_outbox_commit}
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for work that only reads: on the same pool, in a READ ONLY transaction at
    REPEATABLE READ, so everything a session reads comes from one snapshot (a view's customer row,
    accounts and records agree with each other; under READ COMMITTED each statement saw its own,
    and a view read across a consumer's commit showed the new accounts beside the old AUM), and a
    write is refused. The connection goes back to the pool as it came."""
    return session_factory(engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True))


@dataclass(frozen=True)
class NestedRows:
    """Rows nested in a one-statement read's row, as `ARRAY(SELECT (col, ...) FROM ... WHERE ...)`
    labelled `label`; `OneStatementRead` answers them as a list of dicts keyed by column key."""

    label: str
    columns: tuple[Any, ...]
    criteria: tuple[Any, ...]
    order_by: tuple[Any, ...]

    @property
    def keys(self) -> list[str]:
        return [column.key for column in self.columns]

    def column(self) -> Any:
        rows = select(tuple_(*self.columns)).where(*self.criteria).order_by(*self.order_by)
        return func.array(rows.scalar_subquery()).label(self.label)


class OneStatementRead:
    """A read that is one SELECT, run on a pooled connection's own asyncpg connection.

    Built once with SQLAlchemy Core (the tables and columns are the models'), compiled once, and
    run with no session, no ORM and no transaction: one statement reads one snapshot, so whatever
    it joins and aggregates agrees with itself, and it costs one round trip where a READ ONLY
    session costs three (BEGIN, the statement, ROLLBACK). asyncpg prepares it once per connection.
    For the reads behind every gateway view (docs/architecture.md, "Database sessions"): in
    process, profile's view read 2.0 -> 0.3 ms of CPU and 2.5 -> 0.5 ms of wall time this way.

    Rows come back with attribute access by column label (`row.tier`); the `nested` rows (selected
    as `NestedRows.column()`) come back as lists of dicts, in the order selected.
    Errors are the driver's: `runtime.transient` knows which of them are worth retrying, and a
    connection that failed is discarded from the pool rather than handed out again.
    """

    _dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]

    def __init__(self, statement: Any, name: str = "Row", nested: Sequence[NestedRows] = ()) -> None:
        compiled = statement.compile(dialect=self._dialect)
        self.sql = str(compiled)
        if "__[POSTCOMPILE_" in self.sql:
            raise ValueError("an expanding IN cannot be compiled once: write `in_([literal(v), ...])`")
        self._positions: list[str] = list(compiled.positiontup or ())
        self._defaults: dict[str, Any] = dict(compiled.params)
        self._required = frozenset(name for name, bind in compiled.binds.items() if bind.required)
        self._row: Any = namedtuple(name, statement.selected_columns.keys())  # type: ignore[misc]
        self._nested = [(rows.label, rows.keys) for rows in nested]

    async def one_or_none(self, engine: AsyncEngine, **params: Any) -> Any | None:
        """The first row for `params` (every bind parameter the statement names), or None."""
        if missing := self._required - params.keys():
            raise TypeError(f"no value for {', '.join(sorted(missing))}")
        values = self._defaults | params
        # Straight from the engine's pool, not through `engine.connect()`: that wraps the checkout
        # and the return in three greenlet hops, 97 us of CPU a read against 28 us here. The
        # checkout runs in one hop (it may open or recycle a connection); the return is plain
        # Python, as no transaction was begun on the connection (nothing to roll back).
        pooled = await greenlet_spawn(engine.sync_engine.pool.connect)
        driver: Any = pooled.driver_connection
        try:
            record = await driver.fetchrow(self.sql, *(values[n] for n in self._positions))
        except BaseException as exc:
            answered = isinstance(exc, asyncpg.PostgresError)  # the server refused: the connection is fine
            lost = driver.is_closed()
            if lost or not answered:
                pooled.invalidate()  # lost, or cut off mid-statement: closed, never pooled again
            if lost and not answered and isinstance(exc, Exception) and not isinstance(exc, OSError):
                raise ConnectionResetError("the database connection was lost during a read") from exc
            raise
        finally:
            pooled.close()
        if record is None:
            return None
        row = self._row._make(record)
        if not self._nested:
            return row
        return row._replace(
            **{label: [dict(zip(keys, r, strict=True)) for r in getattr(row, label)] for label, keys in self._nested}
        )


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """The one place a unit of work commits: commit on success, roll back on any error. A
    transaction that wrote outbox rows tells the session factory's `on_outbox_commit` once it has
    committed (never before: the relay would look for rows it cannot see yet)."""
    async with sessions() as session:
        async with session.begin():
            yield session
        within_s = session.info.pop(OUTBOX_WRITTEN, None)
        if within_s is not None and (committed := session.info.get(ON_OUTBOX_COMMIT)) is not None:
            committed(within_s)


async def upsert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert `rows` (all with the same keys), updating the `update` columns where a row with the
    same `keys` exists: one statement from arrays (`insert_unnested`), whatever the number of rows.
    Of rows with the same `keys` the last is written, as the last of an executemany's would win
    (one INSERT ... ON CONFLICT cannot update a row twice)."""
    if not rows:
        return
    last = {tuple(row[k] for k in keys): row for row in rows}
    names = tuple(rows[0])
    statement = _upsert_statement(table, names, tuple(keys), tuple(update))
    await session.execute(statement, unnested_params(names, list(last.values())))


@functools.lru_cache(maxsize=64)
def _upsert_statement(table: Table, names: tuple[str, ...], keys: tuple[str, ...], update: tuple[str, ...]) -> Any:
    stmt = insert_unnested(table, names)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={name: stmt.excluded[name] for name in update})
