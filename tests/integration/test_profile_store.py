"""Profile repository behaviour that needs real PostgreSQL concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runtime.db import create_engine, session_factory
from services.profile.domain import AccountState
from services.profile.models import Interaction, Transaction
from services.profile.store import ProfileStore, SourceRef
from tests.builders import unique_ref

CARDS = "cards"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

# A merged customer keeps no source records of its own: it is a redirect, not an orphan.
ORPHANS = (
    "SELECT count(*) FROM profile.customers c WHERE c.merged_into IS NULL AND NOT EXISTS "
    "(SELECT 1 FROM profile.source_records s WHERE s.customer_id = c.customer_id)"
)


async def test_two_instances_linking_the_same_ref_agree_and_leave_no_orphan_customer(migrated_database: str) -> None:
    engine = create_engine(migrated_database)
    sessions = session_factory(engine)
    ref = ("core-deposits", unique_ref("RACE"))
    try:
        async with sessions() as first, sessions() as second:
            await first.begin()
            await second.begin()
            first_links = await ProfileStore(first).link_customers([ref])
            # The second instance blocks on the first one's uncommitted source record.
            racing = asyncio.create_task(ProfileStore(second).link_customers([ref]))
            await asyncio.sleep(0.5)
            assert not racing.done()
            await first.commit()
            second_links = await asyncio.wait_for(racing, 10)
            await second.commit()
        assert second_links == first_links
        async with engine.connect() as conn:
            assert await conn.scalar(text(ORPHANS)) == 0
    finally:
        await engine.dispose()


@pytest.fixture
async def sessions(migrated_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(migrated_database)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def two_customers(sessions: async_sessionmaker[AsyncSession]) -> tuple[SourceRef, str, SourceRef, str]:
    """A core-deposits record and a cards record of one person, still two customers (committed)."""
    core, cards = ("core-deposits", unique_ref("CORE")), (CARDS, unique_ref("CARD"))
    async with sessions.begin() as session:
        links = await ProfileStore(session).link_customers([core, cards])
    return core, links[core], cards, links[cards]


async def owner_of_account(sessions: async_sessionmaker[AsyncSession], account_ref: str) -> str | None:
    async with sessions() as session:
        return await session.scalar(
            text("SELECT customer_id FROM profile.accounts WHERE source = :s AND account_ref = :a"),
            {"s": CARDS, "a": account_ref},
        )


async def test_a_merge_waits_for_an_instance_writing_for_the_absorbed_customer_and_moves_what_it_wrote(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, survivor, cards, absorbed = await two_customers(sessions)
    account = AccountState(source=CARDS, account_ref=unique_ref("ACC"), customer_ref=cards[1], balance=Decimal("10"))
    async with sessions() as writing, sessions() as merging:
        await writing.begin()
        await merging.begin()
        # One instance applies a new card account; the other merges its customer meanwhile.
        links = await ProfileStore(writing).hold_links([cards])
        assert links == {cards: absorbed}
        await ProfileStore(writing).save_accounts([account], links)
        merge = asyncio.create_task(ProfileStore(merging).merge_many({absorbed: survivor}, NOW))
        await asyncio.sleep(0.5)
        assert not merge.done(), "the merge must wait for the instance holding the absorbed customer"
        await writing.commit()
        await asyncio.wait_for(merge, 10)
        await merging.commit()
    # Unheld, the merge's move would not have seen the uncommitted account: left on the absorbed.
    assert await owner_of_account(sessions, account.account_ref) == survivor


async def test_an_instance_linking_a_record_while_its_customer_merges_writes_for_the_survivor(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, survivor, cards, absorbed = await two_customers(sessions)
    async with sessions() as writing, sessions() as merging:
        await merging.begin()
        await writing.begin()
        await ProfileStore(merging).merge_many({absorbed: survivor}, NOW)
        holding = asyncio.create_task(ProfileStore(writing).hold_links([cards]))
        await asyncio.sleep(0.5)
        assert not holding.done(), "the link must wait for the merge of its customer"
        await merging.commit()
        assert await asyncio.wait_for(holding, 10) == {cards: survivor}
        await writing.rollback()


async def test_a_record_linked_to_a_customer_merged_meanwhile_goes_to_its_survivor(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, survivor, _, absorbed = await two_customers(sessions)
    async with sessions.begin() as session:
        await ProfileStore(session).merge_many({absorbed: survivor}, NOW)
    late = (CARDS, unique_ref("LATE"))
    async with sessions.begin() as session:
        # Matched (under its identity lock) to a customer that another identity's merge absorbed.
        links = await ProfileStore(session).hold_links([late], prefer={late: absorbed})
    assert links == {late: survivor}
    async with sessions() as session:
        stranded = await session.scalar(
            text("SELECT count(*) FROM profile.source_records WHERE customer_id = :c"), {"c": absorbed}
        )
    assert stranded == 0


async def test_source_freshness_keeps_the_newest_event_and_adds_up_the_counts_of_every_batch(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second = unique_ref("SRC-A"), unique_ref("SRC-B")
    newest, older = datetime(2026, 11, 23, 8, 59, tzinfo=UTC), datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    async with sessions.begin() as session:
        await ProfileStore(session).record_freshness({first: (newest, 3), second: (older, 1)}, NOW)
    later = NOW.replace(minute=30)
    async with sessions.begin() as session:
        # A late batch of `first` carries older events: its count adds up, its newest time does not win.
        await ProfileStore(session).record_freshness({first: (older, 2)}, later)
    async with sessions() as session:
        found = {f.source: f for f in await ProfileStore(session).freshness() if f.source in (first, second)}
    assert (found[first].events_total, found[first].last_event_at) == (5, newest)
    assert (found[first].last_processed_at, found[first].last_lag_seconds) == (later, (later - older).total_seconds())
    assert (found[second].events_total, found[second].last_event_at, found[second].last_lag_seconds) == (
        1,
        older,
        3600.0,
    )


async def test_daily_balances_keep_the_newest_version_of_each_day_and_leave_a_settled_day_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second, settled = (("core-deposits", unique_ref(name)) for name in ("DAY-A", "DAY-B", "DAY-S"))
    day, next_day = NOW.date(), NOW.date().replace(day=24)

    def balance(account: SourceRef, on: date, amount: str, version: int) -> dict[str, object]:
        return {
            "source": account[0],
            "account_ref": account[1],
            "business_date": on,
            "balance": Decimal(amount),
            "version": version,
        }

    async with sessions.begin() as session:
        store = ProfileStore(session)
        assert await store.record_daily_balances([]) == set()
        written = await store.record_daily_balances(
            [balance(first, day, "100.50", 3), balance(second, day, "7.00", 1), balance(settled, day, "1.00", 1)]
        )
        assert written == {first, second, settled}
        await store.settle_days([{**balance(settled, day, "2.00", 0), "from_snapshot": True}])
    async with sessions.begin() as session:
        store = ProfileStore(session)
        written = await store.record_daily_balances(
            [
                balance(first, day, "90.00", 2),  # an older version of the day: kept out
                balance(first, next_day, "80.00", 4),  # a new day
                balance(second, day, "8.25", 2),  # a newer version of the day
                balance(settled, day, "3.00", 9),  # the snapshot settled the day
            ]
        )
        assert written == {first, second}
    async with sessions() as session:
        found = {
            (row.account_ref, row.business_date): (row.balance, row.version)
            for row in await session.execute(
                text(
                    "SELECT account_ref, business_date, balance, version FROM profile.daily_balances "
                    "WHERE account_ref IN (:a, :b, :s)"
                ),
                {"a": first[1], "b": second[1], "s": settled[1]},
            )
        }
    assert found == {
        (first[1], day): (Decimal("100.50"), 3),
        (first[1], next_day): (Decimal("80.00"), 4),
        (second[1], day): (Decimal("8.25"), 2),
        (settled[1], day): (Decimal("2.00"), 1),
    }


async def test_activity_is_kept_once_each_and_only_the_new_rows_are_answered(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    source, customer = "cards", unique_ref("C-ACT")

    def posted(ref: str, amount: str) -> dict[str, object]:
        return {
            "source": source,
            "transaction_ref": ref,
            "account_ref": "CARD-1",
            "customer_ref": "R1",
            "customer_id": customer,
            "amount": Decimal(amount),
            "currency": "CNY",
            "direction": "debit",
            "channel": "pos",
            "counterparty": "merchant",
            "merchant_category": None,
            "posted_at": NOW,
        }

    first, second, third = (unique_ref(name) for name in ("T1", "T2", "T3"))
    contact = unique_ref("I1")
    async with sessions.begin() as session:
        store = ProfileStore(session)
        assert await store.insert_new(Transaction, []) == set()
        assert await store.insert_new(Transaction, [posted(first, "10.50"), posted(second, "2.00")]) == {
            (source, first),
            (source, second),
        }
        visit = {
            "source": source,
            "interaction_ref": contact,
            "customer_ref": "R1",
            "customer_id": customer,
            "kind": "visit",
            "occurred_at": NOW,
            "satisfaction": None,
            "rm_id": None,
            "note": None,
        }
        assert await store.insert_new(Interaction, [visit]) == {(source, contact)}
    async with sessions.begin() as session:
        store = ProfileStore(session)
        # A redelivered transaction (even with another amount) is not written again or answered.
        assert await store.insert_new(Transaction, [posted(first, "99.00"), posted(third, "3.00")]) == {(source, third)}
        assert await store.insert_new(Interaction, [visit]) == set()
    async with sessions() as session:
        amounts: dict[str, Decimal] = dict(
            (
                await session.execute(
                    text("SELECT transaction_ref, amount FROM profile.transactions WHERE customer_id = :c"),
                    {"c": customer},
                )
            ).all()
        )
    assert amounts == {first: Decimal("10.50"), second: Decimal("2.00"), third: Decimal("3.00")}
