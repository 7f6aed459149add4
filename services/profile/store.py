"""All profile SQL: batched reads and upserts, never a commit (the caller owns the transaction)."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Date,
    DateTime,
    String,
    Table,
    and_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from contracts import Product
from runtime.db import (
    NestedRows,
    OneStatementRead,
    insert_unnested,
    one_of,
    unnested,
    unnested_params,
    update_unnested,
)
from services.profile.domain import AccountState
from services.profile.models import (
    Account,
    Customer,
    DailyBalance,
    FxRate,
    IdentityChange,
    Interaction,
    ReconciliationDifference,
    SourceFreshness,
    SourceRecord,
    Transaction,
)

SourceRef = tuple[str, str]
T = TypeVar("T")
CUSTOMERS = Customer.metadata.tables[f"{Customer.metadata.schema}.customers"]


# A customer's view, which the gateway reads on every request: one statement (one snapshot, one
# round trip; runtime.db.OneStatementRead), from the customer asked for, by id or by a source's
# reference, through merge redirects to the survivor. The redirect chain is bounded: merges always
# point at a live survivor, so a chain is one or two long; 32 only stops a corrupt cycle.
VIEW_CUSTOMER_COLUMNS: tuple[Any, ...] = (
    Customer.customer_id,
    Customer.full_name,
    Customer.branch_id,
    Customer.birth_date,
    Customer.marketing_consent,
    Customer.customer_since,
    Customer.aum_cny,
    Customer.aum_avg_30d_cny,
    Customer.liabilities_cny,
    Customer.unconverted_currencies,
    Customer.tags,
    Customer.tag_reasons,
    Customer.behaviour,
    Customer.interactions,
    Customer.updated_at,
    Customer.last_event_at,
    Customer.average_on,
    Customer.erased_at,
)
VIEW_RECORD_COLUMNS: tuple[Any, ...] = (
    SourceRecord.source,
    SourceRecord.customer_ref,
    SourceRecord.provisional,
    SourceRecord.full_name,
    SourceRecord.id_type,
    SourceRecord.id_number_masked,
    SourceRecord.phone,
    SourceRecord.email,
    SourceRecord.branch_id,
    SourceRecord.marketing_consent,
    SourceRecord.onboarded_on,
    SourceRecord.record_time,
    SourceRecord.merge_guard_hash.is_not(None).label("split_guarded"),
)
VIEW_ACCOUNT_COLUMNS: tuple[Any, ...] = (
    Account.source,
    Account.account_ref,
    Account.customer_ref,
    Account.product,
    Account.currency,
    Account.status,
    Account.opened_on,
    Account.closed_on,
    Account.maturity_date,
    Account.balance,
    Account.balance_version,
    Account.balance_as_of,
    Account.snapshot_on,
)
_RECORDS = NestedRows(
    "source_records",
    VIEW_RECORD_COLUMNS,
    (SourceRecord.customer_id == Customer.customer_id,),
    (SourceRecord.source, SourceRecord.customer_ref),
)
_ACCOUNTS = NestedRows(
    "accounts",
    VIEW_ACCOUNT_COLUMNS,
    (Account.customer_id == Customer.customer_id,),
    (Account.source, Account.account_ref),
)
MAX_REDIRECTS = 32


def _view_read(start: Select[Any]) -> OneStatementRead:
    """The view of the customer `start` selects (as `customer_id`), followed to its survivor."""
    chain = start.add_columns(literal(0).label("depth")).cte("chain", recursive=True)
    hop = aliased(Customer)
    chain = chain.union_all(
        select(hop.merged_into, chain.c.depth + 1)
        .join(hop, hop.customer_id == chain.c.customer_id)
        .where(hop.merged_into.is_not(None), chain.c.depth < MAX_REDIRECTS)
    )
    survivor = select(chain.c.customer_id).order_by(chain.c.depth.desc()).limit(1).scalar_subquery()
    merged = aliased(Customer)
    statement = select(
        *VIEW_CUSTOMER_COLUMNS,
        func.array(
            select(merged.customer_id)
            .where(merged.merged_into == Customer.customer_id)
            .order_by(merged.customer_id)
            .scalar_subquery()
        ).label("merged_ids"),
        _RECORDS.column(),
        _ACCOUNTS.column(),
    ).where(Customer.customer_id == survivor)
    return OneStatementRead(statement, "View", nested=(_RECORDS, _ACCOUNTS))


_VIEW_BY_ID = _view_read(select(Customer.customer_id).where(Customer.customer_id == bindparam("customer_id")))
_VIEW_BY_REF = _view_read(
    select(SourceRecord.customer_id).where(
        SourceRecord.source == bindparam("source"), SourceRecord.customer_ref == bindparam("customer_ref")
    )
)


async def customer_view_row(
    engine: AsyncEngine, *, customer_id: str | None = None, source_ref: SourceRef | None = None
) -> Any | None:
    """A customer's view as one row (columns as in VIEW_CUSTOMER_COLUMNS, plus `merged_ids`, and
    `source_records` and `accounts` as lists of dicts), by golden id or by `(source, customer_ref)`;
    None when no customer answers for it."""
    if source_ref is not None:
        return await _VIEW_BY_REF.one_or_none(engine, source=source_ref[0], customer_ref=source_ref[1])
    return await _VIEW_BY_ID.one_or_none(engine, customer_id=customer_id)


# Reads a split or an erasure makes: built once and bound per call.
_SOURCE_RECORDS = (
    select(SourceRecord)
    .where(SourceRecord.customer_id == bindparam("customer_id"))
    .order_by(SourceRecord.source, SourceRecord.customer_ref)
)
_MERGED_IDS = (
    select(Customer.customer_id).where(Customer.merged_into == bindparam("customer_id")).order_by(Customer.customer_id)
)


def _table(model: type[Any]) -> Table:
    """A mapped class's Core table: bulk writes go through it as one cached executemany."""
    table: Table = model.__table__
    return table


def _record_freshness() -> Any:
    table = _table(SourceFreshness)
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.source],
        set_={
            "last_event_at": func.greatest(table.c.last_event_at, stmt.excluded.last_event_at),
            "last_processed_at": stmt.excluded.last_processed_at,
            "last_lag_seconds": stmt.excluded.last_lag_seconds,
            "events_total": table.c.events_total + stmt.excluded.events_total,
        },
    )


_RECORD_FRESHNESS = _record_freshness()

_DAILY_BALANCE_COLUMNS = ("source", "account_ref", "business_date", "balance", "version")


def _record_daily_balances() -> Any:
    """Upsert days' balances where the version is newer and the day not settled by a snapshot,
    answering the accounts written: one statement for any number of days (an executemany with
    RETURNING goes out as a VALUES list per length)."""
    table = _table(DailyBalance)
    stmt = insert_unnested(table, _DAILY_BALANCE_COLUMNS)
    return stmt.on_conflict_do_update(
        index_elements=[DailyBalance.source, DailyBalance.account_ref, DailyBalance.business_date],
        set_={"balance": stmt.excluded.balance, "version": stmt.excluded.version},
        where=and_(DailyBalance.version < stmt.excluded.version, DailyBalance.from_snapshot.is_(False)),
    ).returning(table.c.source, table.c.account_ref)


_RECORD_DAILY_BALANCES = _record_daily_balances()


def _insert_new(model: type[Any], ref: str) -> Any:
    """Insert activity rows (every column, from unnested arrays) not seen before, answering the
    `(source, ref)` of those that were new: one statement for any number of rows."""
    table = _table(model)
    return (
        insert_unnested(table, [c.name for c in table.c])
        .on_conflict_do_nothing()
        .returning(table.c.source, table.c[ref])
    )


_INSERT_NEW = {
    Transaction: _insert_new(Transaction, "transaction_ref"),
    Interaction: _insert_new(Interaction, "interaction_ref"),
}


CHUNK = 5000

#: Identity fields of a source record; erasure clears them, and the displayed value of each is the
#: newest one any source stated.
PERSONAL_FIELDS = (
    "full_name",
    "id_type",
    "id_number_hash",
    "id_number_masked",
    "birth_date",
    "gender",
    "phone",
    "email",
)
DISPLAYED_FIELDS = ("full_name", "branch_id", "birth_date", "marketing_consent")


@functools.lru_cache(maxsize=4)
def _save_accounts(names: tuple[str, ...]) -> Any:
    """Upsert folded account states (`names` their fields) from arrays: one statement for any
    number of accounts."""
    table = _table(Account)
    stmt = insert_unnested(table, names)
    changed = [name for name in names if name not in ("source", "account_ref")]
    return stmt.on_conflict_do_update(
        index_elements=[table.c.source, table.c.account_ref],
        set_={name: stmt.excluded[name] for name in changed} | {"updated_at": func.now()},
    )


@functools.lru_cache(maxsize=4)
def _save_views(names: tuple[str, ...]) -> Any:
    """Store computed figures (`names`, with `event_at` the newest event time behind them) from
    arrays: one statement for any number of customers."""
    figures = tuple(name for name in names if name != "event_at")
    statement, rows = update_unnested(CUSTOMERS, ("customer_id",), figures, _EVENT_AT)
    event_at = rows.c.event_at
    return statement.values(
        updated_at=func.now(),
        last_event_at=func.coalesce(func.greatest(CUSTOMERS.c.last_event_at, event_at), CUSTOMERS.c.last_event_at),
    )


_EVENT_AT = Column("event_at", DateTime(timezone=True))


def _pairs(pairs: Sequence[tuple[str, str]], first: str, second: str) -> Any:
    """The pairs as a derived table `(first, second)`: joined on a primary key, it reads each pair
    through the index with one statement text whatever the number of pairs (a row-value IN list
    is planned as an OR of every pair, and compiled per size)."""
    return unnested(first, second, values=([p[0] for p in pairs], [p[1] for p in pairs]))


def new_customer_id() -> str:
    """A golden customer id: `C` and 16 hex digits, random so batches need no sequence."""
    return "C" + secrets.token_hex(8).upper()


def identity_lock_key(id_number_hash: str) -> int:
    """The advisory lock that serialises matching on one identity hash across instances."""
    return int(id_number_hash[:15], 16)


@dataclass(frozen=True)
class MatchCandidate:
    source: str
    customer_ref: str
    customer_id: str
    created_at: datetime


@dataclass(frozen=True)
class StoredView:
    """The figures last written for a customer, to tell whether a recomputation changed anything."""

    aum_cny: Decimal
    aum_avg_30d_cny: Decimal
    liabilities_cny: Decimal
    unconverted_currencies: tuple[str, ...]
    tags: tuple[str, ...]
    behaviour: Any
    interactions: Any
    erased: bool


class ProfileStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- identity -----------------------------------------------------------------------------

    async def link_customers(
        self,
        refs: Iterable[SourceRef],
        prefer: Mapping[SourceRef, str] | None = None,
        *,
        created: set[str] | None = None,
    ) -> dict[SourceRef, str]:
        """The golden customer of each `(source, customer_ref)`. An unknown ref is linked to the
        customer `prefer` names for it (an existing customer with the same identity, or one new id
        shared by the batch's records of one person), else to a provisional customer of its own.
        The ids of the customers this call created are added to `created`."""
        wanted = sorted(set(refs))
        if not wanted:
            return {}
        links: dict[SourceRef, str] = {}
        for chunk in _chunks(wanted, CHUNK):
            keys = _pairs(chunk, "source", "customer_ref")
            rows = await self.session.execute(
                select(SourceRecord.source, SourceRecord.customer_ref, SourceRecord.customer_id).join(
                    keys,
                    and_(SourceRecord.source == keys.c.source, SourceRecord.customer_ref == keys.c.customer_ref),
                )
            )
            links.update({(r.source, r.customer_ref): r.customer_id for r in rows})
        missing = [ref for ref in wanted if ref not in links]
        if missing:
            chosen = prefer or {}
            chosen_id = {ref: chosen.get(ref) or new_customer_id() for ref in missing}
            table = _table(SourceRecord)
            inserted = await self.session.execute(
                insert(table).on_conflict_do_nothing().returning(table.c.source, table.c.customer_ref),
                [{"source": s, "customer_ref": r, "customer_id": chosen_id[(s, r)]} for s, r in missing],
            )
            won = {(r.source, r.customer_ref) for r in inserted}
            if won:
                # Only the refs this transaction linked get a golden customer: no orphans.
                # (A preferred customer may exist already: then there is nothing to create.)
                new = await self.session.execute(
                    insert(CUSTOMERS).on_conflict_do_nothing().returning(CUSTOMERS.c.customer_id),
                    [{"customer_id": cid} for cid in sorted({chosen_id[ref] for ref in won})],
                )
                if created is not None:
                    created.update(new.scalars())
            links.update({ref: chosen_id[ref] for ref in won})
            lost = [ref for ref in missing if ref not in won]
            if lost:
                # Another consumer instance linked these refs first: use its customers.
                links.update(await self.link_customers(lost))
        return links

    async def hold_links(
        self,
        refs: Iterable[SourceRef],
        prefer: Mapping[SourceRef, str] | None = None,
        *,
        created: set[str] | None = None,
    ) -> dict[SourceRef, str]:
        """`link_customers`, with each linked customer locked until commit, so that what this
        transaction writes for a customer cannot be left behind on one merged or split away.

        A merge or split locks the customers it takes apart before it moves what they own. So once
        a customer is locked here, its links read again hold still; and a customer that turns out
        merged already (a record linked to it while the merge ran) hands what it still holds to its
        survivor, and the links are read again until every linked customer is held and live.
        """
        links = await self.link_customers(refs, prefer, created=created)
        held: set[str] = set()
        while wanted := set(links.values()) - held:
            merged = await self.lock_customers(wanted)
            held |= wanted
            await self._move_owned(merged)
            links = await self.link_customers(list(links))
        return links

    async def lock_customers(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """Lock the customers' rows until commit, in id order; the merged-away ones -> their survivor."""
        merged: dict[str, str] = {}
        for chunk in _chunks(sorted(set(customer_ids)), CHUNK):
            rows = await self.session.execute(
                select(CUSTOMERS.c.customer_id, CUSTOMERS.c.merged_into)
                .where(one_of(CUSTOMERS.c.customer_id, chunk))
                .order_by(CUSTOMERS.c.customer_id)
                .with_for_update()
            )
            merged.update({r.customer_id: r.merged_into for r in rows if r.merged_into is not None})
        return merged

    async def _move_owned(self, survivor_of: Mapping[str, str]) -> None:
        """Move every row each customer (key) owns to another (value), one executemany per table."""
        if not survivor_of:
            return
        rows = [{"b_from": a, "b_to": s} for a, s in sorted(survivor_of.items())]
        for model in (SourceRecord, Account, Transaction, Interaction):
            table = _table(model)
            await self.session.execute(
                update(table).where(table.c.customer_id == bindparam("b_from")).values(customer_id=bindparam("b_to")),
                rows,
            )

    async def lock_identities(self, hashes: Iterable[str]) -> None:
        """Hold each identity hash's advisory lock until commit, taken in key order (so two
        transactions never wait on each other in a circle), in one round trip."""
        keys = sorted({identity_lock_key(h) for h in hashes})
        if keys:
            await self.session.execute(
                text(
                    "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(:keys) AS k ORDER BY 1) AS ordered"
                ).bindparams(bindparam("keys", keys, type_=ARRAY(BigInteger)))
            )

    async def erased_customers(self, customer_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(customer_ids))
        if not ids:
            return set()
        rows = await self.session.execute(
            select(Customer.customer_id).where(one_of(Customer.customer_id, ids), Customer.erased_at.is_not(None))
        )
        return set(rows.scalars())

    async def upsert_source_records(self, records: Sequence[Mapping[str, object]]) -> None:
        """Write identity fields of source records; an older record than the stored one is ignored."""
        if not records:
            return
        stmt = insert(_table(SourceRecord))
        fields = [k for k in records[0] if k not in ("source", "customer_ref", "customer_id")]
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[SourceRecord.source, SourceRecord.customer_ref],
                set_={name: stmt.excluded[name] for name in fields},
                where=or_(SourceRecord.record_time.is_(None), SourceRecord.record_time <= stmt.excluded.record_time),
            ),
            list(records),
        )

    async def match_candidates_of(self, hashes: Iterable[str]) -> dict[str, list[MatchCandidate]]:
        """Per hash, every source record carrying it, except those a split guards against it; in one
        query per chunk of hashes."""
        wanted = sorted(set(hashes))
        found: dict[str, list[MatchCandidate]] = {h: [] for h in wanted}
        for chunk in _chunks(wanted, CHUNK):
            rows = await self.session.execute(
                select(
                    SourceRecord.id_number_hash,
                    SourceRecord.source,
                    SourceRecord.customer_ref,
                    SourceRecord.customer_id,
                    Customer.created_at,
                )
                .join(Customer, Customer.customer_id == SourceRecord.customer_id)
                .where(
                    one_of(SourceRecord.id_number_hash, chunk),
                    or_(
                        SourceRecord.merge_guard_hash.is_(None),
                        SourceRecord.merge_guard_hash != SourceRecord.id_number_hash,
                    ),
                )
                .order_by(SourceRecord.source, SourceRecord.customer_ref)
            )
            for r in rows:
                found[r.id_number_hash].append(MatchCandidate(r.source, r.customer_ref, r.customer_id, r.created_at))
        return found

    async def merge_many(self, survivor_of: Mapping[str, str], at: datetime) -> None:
        """Move everything of each absorbed customer (key) to its survivor (value), every merge of a
        batch in one executemany per table; the absorbed redirect to their survivor for ever."""
        pairs = {a: s for a, s in survivor_of.items() if a != s}
        if not pairs:
            return
        # Locked first: a transaction holding an absorbed customer (`hold_links`) commits what it
        # wrote for it before the move below reads, so nothing it wrote stays behind.
        await self.lock_customers(pairs)
        await self._move_owned(pairs)
        rows = [{"b_absorbed": a, "b_survivor": s, "b_at": at} for a, s in sorted(pairs.items())]
        # Chains stay one hop long: whatever redirected to an absorbed customer now redirects to its survivor.
        await self.session.execute(
            update(CUSTOMERS)
            .where(
                or_(
                    CUSTOMERS.c.customer_id == bindparam("b_absorbed"),
                    CUSTOMERS.c.merged_into == bindparam("b_absorbed"),
                )
            )
            .values(merged_into=bindparam("b_survivor"), updated_at=bindparam("b_at")),
            rows,
        )

    async def record_identity_changes(self, rows: Sequence[Mapping[str, object]]) -> None:
        if rows:
            await self.session.execute(insert(IdentityChange), list(rows))

    async def refresh_identity(self, customer_ids: Iterable[str]) -> None:
        """Copy the displayed identity fields onto the customer, by the documented precedence.

        For each field the newest statement of any source wins (by the record's event time), so
        marketing consent is the newest consent statement and a merge keeps it so; a source that
        leaves a field empty does not erase what another source said. Erased customers keep none.
        """
        ids = sorted(set(customer_ids) - await self.erased_customers(customer_ids))
        if not ids:
            return
        rows = await self.session.execute(
            select(SourceRecord)
            .where(one_of(SourceRecord.customer_id, ids), SourceRecord.provisional.is_(False))
            .order_by(SourceRecord.customer_id, SourceRecord.record_time)
        )
        shown: dict[str, dict[str, Any]] = {cid: {name: None for name in DISPLAYED_FIELDS} for cid in ids}
        for record in rows.scalars():
            values = shown[record.customer_id]
            for name in DISPLAYED_FIELDS:
                value = getattr(record, name)
                if value is not None:
                    values[name] = value
        await self.session.execute(
            update(CUSTOMERS)
            .where(CUSTOMERS.c.customer_id == bindparam("b_customer_id"))
            .values({name: bindparam(f"b_{name}") for name in DISPLAYED_FIELDS} | {"updated_at": func.now()}),
            [
                {"b_customer_id": customer_id} | {f"b_{name}": value for name, value in values.items()}
                for customer_id, values in sorted(shown.items())
            ],
        )

    async def customer_since(self, customer_ids: Iterable[str]) -> dict[str, date]:
        """The earliest day a source says the customer joined or opened an account."""
        ids = sorted(set(customer_ids))
        found: dict[str, date] = {}
        for chunk in _chunks(ids, CHUNK):
            for column, table in ((SourceRecord.onboarded_on, SourceRecord), (Account.opened_on, Account)):
                rows = await self.session.execute(
                    select(table.customer_id, func.min(column))
                    .where(one_of(table.customer_id, chunk), column.is_not(None))
                    .group_by(table.customer_id)
                )
                for customer_id, day in rows:
                    earlier = found.get(customer_id)
                    if day is not None:
                        found[customer_id] = day if earlier is None else min(earlier, day)
        return found

    # -- accounts and balances ------------------------------------------------------------------

    async def load_accounts(self, keys: Iterable[SourceRef]) -> dict[SourceRef, AccountState]:
        wanted = sorted(set(keys))
        found: dict[SourceRef, AccountState] = {}
        for chunk in _chunks(wanted, CHUNK):
            chosen = _pairs(chunk, "source", "account_ref")
            rows = await self.session.execute(
                select(*ACCOUNT_STATE).join(
                    chosen, and_(Account.source == chosen.c.source, Account.account_ref == chosen.c.account_ref)
                )
            )
            for account in rows:
                found[(account.source, account.account_ref)] = _account_state(account)
        return found

    async def save_accounts(self, accounts: Sequence[AccountState], customer_of: Mapping[SourceRef, str]) -> None:
        """Upsert folded account states in one statement per chunk."""
        if not accounts:
            return
        rows = []
        for state in accounts:
            row = dict(vars(state))  # the fields, shallow: asdict deep-copies every value
            row["product"] = state.product.value if state.product else None
            row["customer_id"] = customer_of[(state.source, state.customer_ref)]
            rows.append(row)
        await self.session.execute(_save_accounts(tuple(rows[0])), unnested_params(tuple(rows[0]), rows))

    async def accounts_of(self, customer_ids: Iterable[str]) -> dict[str, list[AccountState]]:
        ids = sorted(set(customer_ids))
        by_customer: dict[str, list[AccountState]] = {cid: [] for cid in ids}
        for chunk in _chunks(ids, CHUNK):
            rows = await self.session.execute(
                select(*ACCOUNT_STATE, Account.customer_id).where(one_of(Account.customer_id, chunk))
            )
            for account in rows:
                by_customer[account.customer_id].append(_account_state(account))
        return by_customer

    async def record_daily_balances(self, rows: Sequence[Mapping[str, object]]) -> set[SourceRef]:
        """Each day keeps its highest balance version; a day a snapshot settled is not touched.

        Answers the accounts whose history changed.
        """
        if not rows:
            return set()
        written = await self.session.execute(_RECORD_DAILY_BALANCES, unnested_params(_DAILY_BALANCE_COLUMNS, rows))
        return {(r.source, r.account_ref) for r in written}

    async def running_balances(self, wanted: Sequence[tuple[str, str, date]]) -> dict[tuple[str, str, date], Decimal]:
        """The end-of-day balance of each `(source, account_ref, day)`: the newest day at or before it."""
        found: dict[tuple[str, str, date], Decimal] = {}
        for chunk in _chunks(list(wanted), 1000):
            rows = await self.session.execute(
                text(
                    "SELECT v.source, v.account_ref, v.day, d.balance "
                    "FROM unnest(:sources, :refs, :days) AS v(source, account_ref, day) "
                    "CROSS JOIN LATERAL (SELECT balance FROM profile.daily_balances d "
                    "  WHERE d.source = v.source AND d.account_ref = v.account_ref AND d.business_date <= v.day "
                    "  ORDER BY d.business_date DESC LIMIT 1) d"
                ).bindparams(
                    bindparam("sources", [w[0] for w in chunk], type_=ARRAY(String)),
                    bindparam("refs", [w[1] for w in chunk], type_=ARRAY(String)),
                    bindparam("days", [w[2] for w in chunk], type_=ARRAY(Date)),
                )
            )
            for source, account_ref, day, balance in rows:
                found[(source, account_ref, day)] = balance
        return found

    async def settle_days(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Write snapshot balances as final for their day."""
        if rows:
            stmt = insert(_table(DailyBalance))
            await self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[DailyBalance.source, DailyBalance.account_ref, DailyBalance.business_date],
                    set_={"balance": stmt.excluded.balance, "from_snapshot": True},
                ),
                list(rows),
            )

    async def record_differences(self, rows: Sequence[Mapping[str, object]]) -> None:
        if rows:
            await self.session.execute(insert(ReconciliationDifference), list(rows))

    async def balance_history(
        self, keys: Iterable[SourceRef], since: date, until: date
    ) -> dict[SourceRef, list[tuple[date, Decimal]]]:
        """Each account's end-of-day balances from `since` to `until`, plus the last one before `since`."""
        wanted = sorted(set(keys))
        history: dict[SourceRef, list[tuple[date, Decimal]]] = {key: [] for key in wanted}
        for chunk in _chunks(wanted, CHUNK):
            # Per account, through the primary key: the newest day before `since` and the days
            # from `since` to `until`.
            rows = await self.session.execute(
                text(
                    "SELECT k.source, k.account_ref, d.business_date, d.balance "
                    "FROM unnest(:sources, :account_refs) AS k(source, account_ref) "
                    "CROSS JOIN LATERAL ("
                    "  (SELECT business_date, balance FROM profile.daily_balances b "
                    "   WHERE b.source = k.source AND b.account_ref = k.account_ref AND b.business_date < :since "
                    "   ORDER BY b.business_date DESC LIMIT 1) "
                    "  UNION ALL "
                    "  (SELECT business_date, balance FROM profile.daily_balances b "
                    "   WHERE b.source = k.source AND b.account_ref = k.account_ref "
                    "   AND b.business_date BETWEEN :since AND :until)"
                    ") d"
                ).bindparams(
                    bindparam("sources", [key[0] for key in chunk], type_=ARRAY(String)),
                    bindparam("account_refs", [key[1] for key in chunk], type_=ARRAY(String)),
                    bindparam("since", since, type_=Date),
                    bindparam("until", until, type_=Date),
                )
            )
            for source, account_ref, day, balance in rows:
                history[(source, account_ref)].append((day, balance))
        return history

    async def upsert_rates(self, rates: Mapping[str, tuple[Decimal, datetime]]) -> None:
        """Keep the newest rate per currency; an older `as_of` never replaces a newer one."""
        if not rates:
            return
        stmt = insert(FxRate).values(
            [{"currency": c, "rate_to_cny": r, "as_of": at} for c, (r, at) in sorted(rates.items())]
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[FxRate.currency],
                set_={"rate_to_cny": stmt.excluded.rate_to_cny, "as_of": stmt.excluded.as_of},
                where=FxRate.as_of < stmt.excluded.as_of,
            )
        )

    async def rates(self) -> dict[str, Decimal]:
        rows = await self.session.execute(select(FxRate.currency, FxRate.rate_to_cny))
        return {r.currency: r.rate_to_cny for r in rows}

    async def customers_holding(self, currencies: Iterable[str]) -> set[str]:
        wanted = sorted(set(currencies))
        held = await self.session.execute(select(Account.customer_id).where(Account.currency.in_(wanted)).distinct())
        paid = await self.session.execute(
            select(Transaction.customer_id).where(Transaction.currency.in_(wanted)).distinct()
        )
        return set(held.scalars()) | set(paid.scalars())

    # -- transactions and interactions -----------------------------------------------------------

    async def insert_new(
        self, table: type[Transaction] | type[Interaction], rows: Sequence[Mapping[str, object]]
    ) -> set[SourceRef]:
        """Insert rows not seen before; answers the `(source, ref)` keys that were new."""
        if not rows:
            return set()
        names = [c.name for c in _table(table).c]
        inserted = await self.session.execute(_INSERT_NEW[table], unnested_params(names, rows))
        return {(r[0], r[1]) for r in inserted}

    async def transactions_since(self, customer_ids: Iterable[str], since: datetime) -> dict[str, list[Transaction]]:
        ids = sorted(set(customer_ids))
        found: dict[str, list[Transaction]] = {cid: [] for cid in ids}
        for chunk in _chunks(ids, CHUNK):
            rows = await self.session.execute(
                select(Transaction).where(one_of(Transaction.customer_id, chunk), Transaction.posted_at > since)
            )
            for row in rows.scalars():
                found[row.customer_id].append(row)
        return found

    async def last_transactions(self, customer_ids: Iterable[str]) -> dict[str, datetime]:
        ids = sorted(set(customer_ids))
        found: dict[str, datetime] = {}
        for chunk in _chunks(ids, CHUNK):
            rows = await self.session.execute(
                select(Transaction.customer_id, func.max(Transaction.posted_at))
                .where(one_of(Transaction.customer_id, chunk))
                .group_by(Transaction.customer_id)
            )
            found.update({cid: at for cid, at in rows})
        return found

    async def interactions_of(self, customer_ids: Iterable[str]) -> dict[str, list[Interaction]]:
        ids = sorted(set(customer_ids))
        found: dict[str, list[Interaction]] = {cid: [] for cid in ids}
        for chunk in _chunks(ids, CHUNK):
            rows = await self.session.execute(select(Interaction).where(one_of(Interaction.customer_id, chunk)))
            for row in rows.scalars():
                found[row.customer_id].append(row)
        return found

    # -- the computed view ----------------------------------------------------------------------

    async def save_views(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Store each customer's computed figures in one statement, from arrays.

        `last_event_at` is the newest event time seen for the customer; a late event (or a
        recomputation without one, None) never moves it back.
        """
        if not rows:
            return
        names = tuple(name for name in rows[0] if name != "customer_id")
        await self.session.execute(_save_views(names), unnested_params(("customer_id", *names), rows))

    async def due_for_rollforward(self, today: date, limit: int) -> list[str]:
        """Live customers whose average and windows were last computed before `today`."""
        rows = await self.session.execute(
            select(Customer.customer_id)
            .where(Customer.merged_into.is_(None), or_(Customer.average_on.is_(None), Customer.average_on < today))
            .order_by(Customer.customer_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows.scalars())

    async def profiles(self, customer_ids: Iterable[str], *, lock: bool = False) -> dict[str, Customer]:
        """The customers' rows; with `lock`, held until commit (in id order) so two instances
        recomputing one customer take turns and the second sees what the first wrote."""
        ids = sorted(set(customer_ids))
        found: dict[str, Customer] = {}
        for chunk in _chunks(ids, CHUNK):
            stmt = select(Customer).where(one_of(Customer.customer_id, chunk)).order_by(Customer.customer_id)
            rows = await self.session.execute(stmt.with_for_update() if lock else stmt)
            found.update({c.customer_id: c for c in rows.scalars()})
        return found

    async def record_freshness(self, seen: Mapping[str, tuple[datetime, int]], at: datetime) -> None:
        """Per source: the newest event time of this batch, the lag behind it, and a running count.

        One cached statement run as an executemany: a multi-row VALUES was compiled again by
        SQLAlchemy for every batch (no cache key), on every batch profile handled."""
        if not seen:
            return
        rows = [
            {
                "source": source,
                "last_event_at": newest,
                "last_processed_at": at,
                "last_lag_seconds": max(0.0, (at - newest).total_seconds()),
                "events_total": count,
            }
            for source, (newest, count) in sorted(seen.items())
        ]
        await self.session.execute(_RECORD_FRESHNESS, rows)

    # -- reads for the API ----------------------------------------------------------------------

    async def customer(self, customer_id: str, *, lock: bool = False) -> Customer | None:
        """The customer, following merge redirects to the survivor; with `lock`, each row read is
        locked until commit (before a split or an erasure, against a consumer holding it)."""
        seen: set[str] = set()
        current = await self.session.get(Customer, customer_id, with_for_update=lock, populate_existing=lock)
        while current is not None and current.merged_into and current.merged_into not in seen:
            seen.add(current.customer_id)
            current = await self.session.get(
                Customer, current.merged_into, with_for_update=lock, populate_existing=lock
            )
        return current

    async def source_records(self, customer_id: str) -> Sequence[SourceRecord]:
        return (await self.session.scalars(_SOURCE_RECORDS, {"customer_id": customer_id})).all()

    async def merged_ids(self, customer_id: str) -> list[str]:
        return list(await self.session.scalars(_MERGED_IDS, {"customer_id": customer_id}))

    async def search(
        self,
        *,
        name_prefix: str | None,
        branch_id: str | None,
        tag: str | None,
        after: str | None,
        limit: int,
        ids: Sequence[str] | None = None,
    ) -> Sequence[Customer]:
        """Live customers by name prefix (case-insensitive), branch, tag and id, in customer id order."""
        stmt = select(Customer).where(Customer.merged_into.is_(None))
        if ids is not None:
            stmt = stmt.where(Customer.customer_id.in_(ids))
        if name_prefix:
            escaped = name_prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(func.lower(Customer.full_name).like(escaped + "%", escape="\\"))
        if branch_id:
            stmt = stmt.where(Customer.branch_id == branch_id)
        if tag:
            stmt = stmt.where(Customer.tags.contains([tag]))
        if after:
            stmt = stmt.where(Customer.customer_id > after)
        rows = await self.session.execute(stmt.order_by(Customer.customer_id).limit(limit))
        return rows.scalars().all()

    async def records_of(self, customer_id: str, refs: Iterable[SourceRef]) -> list[SourceRecord]:
        wanted = sorted(set(refs))
        rows = await self.session.execute(
            select(SourceRecord)
            .where(
                SourceRecord.customer_id == customer_id,
                tuple_(SourceRecord.source, SourceRecord.customer_ref).in_(wanted),
            )
            .with_for_update()
        )
        return list(rows.scalars())

    async def split_off(self, customer_id: str, records: Sequence[SourceRecord], new_id: str) -> None:
        """Move `records` and what came from them to a new golden customer `new_id`.

        Each moved record keeps its identity hash as a merge guard, so it does not re-merge.
        """
        refs = [(r.source, r.customer_ref) for r in records]
        await self.session.execute(insert(Customer).values(customer_id=new_id))
        await self.session.execute(
            update(SourceRecord)
            .where(tuple_(SourceRecord.source, SourceRecord.customer_ref).in_(refs))
            .values(customer_id=new_id, merge_guard_hash=SourceRecord.id_number_hash)
        )
        for table in (Account, Transaction, Interaction):
            await self.session.execute(
                update(table)
                .where(
                    table.customer_id == customer_id,
                    tuple_(table.source, table.customer_ref).in_(refs),
                )
                .values(customer_id=new_id)
            )

    async def erase(self, customer_id: str, at: datetime) -> None:
        """Remove the customer's personal data; figures, accounts and transactions stay anonymous."""
        await self.session.execute(
            update(CUSTOMERS)
            .where(or_(CUSTOMERS.c.customer_id == customer_id, CUSTOMERS.c.merged_into == customer_id))
            .values(full_name=None, birth_date=None, marketing_consent=None, erased_at=at, updated_at=at)
        )
        await self.session.execute(
            update(SourceRecord)
            .where(SourceRecord.customer_id == customer_id)
            .values({name: None for name in PERSONAL_FIELDS} | {"merge_guard_hash": None})
        )
        await self.session.execute(update(Interaction).where(Interaction.customer_id == customer_id).values(note=None))

    async def identity_changes(self, customer_ids: Sequence[str], limit: int) -> Sequence[IdentityChange]:
        rows = await self.session.execute(
            select(IdentityChange)
            .where(
                or_(IdentityChange.customer_id.in_(customer_ids), IdentityChange.other_customer_id.in_(customer_ids))
            )
            .order_by(IdentityChange.at.desc(), IdentityChange.id.desc())
            .limit(limit)
        )
        return rows.scalars().all()

    async def timeline(
        self,
        customer_ids: Sequence[str],
        *,
        after: tuple[datetime, str, str] | None,
        limit: int,
        large_from: Decimal | None = None,
    ) -> Sequence[Any]:
        """The customers' events newest first: accounts, transactions, interactions, identity changes
        and reconciliation findings, paged by `(at, kind, ref)`."""
        parts = [
            select(
                cast(Account.opened_on, DateTime(timezone=True)).label("at"),
                literal("account_opened").label("kind"),
                Account.source.label("source"),
                Account.account_ref.label("ref"),
                func.concat(Account.product, " in ", Account.currency).label("detail"),
            ).where(Account.customer_id.in_(customer_ids), Account.opened_on.is_not(None)),
            select(
                cast(Account.closed_on, DateTime(timezone=True)),
                literal("account_closed"),
                Account.source,
                Account.account_ref,
                func.concat(Account.product, " closed"),
            ).where(Account.customer_id.in_(customer_ids), Account.closed_on.is_not(None)),
            select(
                Transaction.posted_at,
                literal("transaction"),
                Transaction.source,
                Transaction.transaction_ref,
                func.concat(
                    Transaction.direction,
                    " ",
                    Transaction.amount,
                    " ",
                    Transaction.currency,
                    " via ",
                    Transaction.channel,
                    " (",
                    Transaction.counterparty,
                    ")",
                ),
            ).where(
                Transaction.customer_id.in_(customer_ids),
                Transaction.amount >= large_from if large_from is not None else true(),
            ),
            select(
                Interaction.occurred_at,
                Interaction.kind,
                Interaction.source,
                Interaction.interaction_ref,
                func.concat("satisfaction ", func.coalesce(cast(Interaction.satisfaction, String), "-")),
            ).where(Interaction.customer_id.in_(customer_ids)),
            select(
                IdentityChange.at,
                IdentityChange.kind,
                literal(None, String),
                cast(IdentityChange.id, String),
                IdentityChange.reason,
            ).where(
                or_(IdentityChange.customer_id.in_(customer_ids), IdentityChange.other_customer_id.in_(customer_ids))
            ),
            select(
                ReconciliationDifference.detected_at,
                literal("reconciliation"),
                ReconciliationDifference.source,
                ReconciliationDifference.account_ref,
                func.concat(
                    "snapshot of ",
                    ReconciliationDifference.business_date,
                    ": ",
                    ReconciliationDifference.expected,
                    " ",
                    ReconciliationDifference.currency,
                    ", running balance was ",
                    ReconciliationDifference.found,
                ),
            ).where(ReconciliationDifference.customer_id.in_(customer_ids)),
        ]
        events = union_all(*parts).subquery()
        stmt = select(events)
        if after is not None:
            stmt = stmt.where(tuple_(events.c.at, events.c.kind, events.c.ref) < tuple_(*after))
        rows = await self.session.execute(
            stmt.order_by(events.c.at.desc(), events.c.kind.desc(), events.c.ref.desc()).limit(limit)
        )
        return [r._mapping for r in rows]

    async def freshness(self) -> Sequence[SourceFreshness]:
        rows = await self.session.execute(select(SourceFreshness).order_by(SourceFreshness.source))
        return rows.scalars().all()

    async def reconciliation_summary(self) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            select(
                ReconciliationDifference.source,
                func.count().label("differences"),
                func.count(func.distinct(ReconciliationDifference.account_ref)).label("accounts"),
                func.max(ReconciliationDifference.detected_at).label("last_detected_at"),
            )
            .group_by(ReconciliationDifference.source)
            .order_by(ReconciliationDifference.source)
        )
        return [dict(r._mapping) for r in rows]

    async def differences(self, *, before_id: int | None, limit: int) -> Sequence[ReconciliationDifference]:
        stmt = select(ReconciliationDifference)
        if before_id is not None:
            stmt = stmt.where(ReconciliationDifference.id < before_id)
        rows = await self.session.execute(stmt.order_by(ReconciliationDifference.id.desc()).limit(limit))
        return rows.scalars().all()

    async def identity_change_counts(self) -> dict[str, int]:
        rows = await self.session.execute(select(IdentityChange.kind, func.count()).group_by(IdentityChange.kind))
        return {kind: count for kind, count in rows}


#: The account columns an `AccountState` holds, read as plain rows: the consumer's reads need no
#: ORM objects (building them was most of each read's cost).
_STATE_FIELDS = tuple(f.name for f in fields(AccountState))
ACCOUNT_STATE = tuple(_table(Account).c[name] for name in _STATE_FIELDS)
_PRODUCT_AT = _STATE_FIELDS.index("product")
_PRODUCTS = {product.value: product for product in Product}


def _account_state(row: Sequence[Any]) -> AccountState:
    """A row that begins with the `ACCOUNT_STATE` columns, as the domain sees it. The columns are
    the dataclass's fields in its order, so the row is handed over by position: by name (14
    attribute reads of the row, a keyword call and `Product(value)`) it took 9.6 us an account,
    by position 2.6 (docs/benchmarks.md)."""
    values = list(row[: len(_STATE_FIELDS)])
    product = values[_PRODUCT_AT]
    values[_PRODUCT_AT] = _PRODUCTS[product] if product else None
    return AccountState(*values)


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
