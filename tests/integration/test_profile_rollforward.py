"""The profile's daily roll-forward against the real database, with time moved by the test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts import BANK_ACCOUNTS, ProfileUpdated
from runtime.clock import FixedClock
from runtime.consumer import BatchContext
from runtime.db import create_engine, session_factory, transaction
from services.profile.app import rollforward_job
from services.profile.handlers import ProfileHandler
from services.profile.identity import IdentityProtector
from services.profile.settings import ProfileConfig
from services.profile.store import ProfileStore
from services.profile.view import ViewBuilder
from tests.builders import account_balance, account_opened, consumed, unique_ref

# Far from the wall clock, so the running platform's own roll-forward never has this day.
START = datetime(2030, 1, 10, 4, 0, tzinfo=UTC)


def published(ctx: BatchContext, customer_id: str) -> list[ProfileUpdated]:
    found = []
    for message in ctx.outbox:
        data = message.event.data
        if message.key == customer_id and data.get("aum_avg_30d_cny") is not None:
            found.append(ProfileUpdated.model_validate(data))
    return found


async def test_the_30_day_average_moves_each_day_without_events_and_publishes_only_when_it_moved(
    migrated_database: str,
) -> None:
    engine = create_engine(migrated_database)
    sessions = session_factory(engine)
    clock = FixedClock(START)
    config = ProfileConfig()
    views = ViewBuilder(config)
    handler = ProfileHandler(IdentityProtector("test-key"), config, views)
    job = rollforward_job(views, batch=10_000, interval_s=60)
    ref = unique_ref("ROLL")
    try:
        async with transaction(sessions) as session:
            ctx = BatchContext(session=session, clock=clock, source="profile")
            await handler(
                ctx,
                consumed(
                    BANK_ACCOUNTS,
                    [
                        account_opened(ref, f"{ref}-TD"),
                        account_balance(ref, f"{ref}-TD", "30000.00", as_of=START),
                    ],
                ),
            )
            customer_id = (await ProfileStore(session).link_customers([("core-deposits", ref)]))[("core-deposits", ref)]
        [first] = published(ctx, customer_id)
        assert first.aum_avg_30d_cny == 1000

        averages = []
        for _ in range(3):
            clock.advance(timedelta(days=1))
            async with transaction(sessions) as session:
                ctx = BatchContext(session=session, clock=clock, source="profile")
                while await job.run(ctx):
                    pass
            [update] = published(ctx, customer_id)
            assert "aum_avg_30d" in update.changed
            averages.append(update.aum_avg_30d_cny)
        assert [str(a) for a in averages] == ["2000.00", "3000.00", "4000.00"]

        # Later the same day there is nothing due, so nothing is published twice.
        async with transaction(sessions) as session:
            ctx = BatchContext(session=session, clock=clock, source="profile")
            await job.run(ctx)
        assert published(ctx, customer_id) == []
    finally:
        await engine.dispose()


async def test_a_customer_an_event_only_names_is_published_by_the_batch_that_creates_it(
    migrated_database: str,
) -> None:
    engine = create_engine(migrated_database)
    sessions = session_factory(engine)
    clock = FixedClock(START)
    config = ProfileConfig()
    views = ViewBuilder(config)
    handler = ProfileHandler(IdentityProtector("test-key"), config, views)
    owner, other = unique_ref("OWN"), unique_ref("OTHER")
    account = f"{owner}-CUR"
    try:
        async with transaction(sessions) as session:
            ctx = BatchContext(session=session, clock=clock, source="profile")
            # The balance names another customer_ref than the account's owner: that ref gets a
            # customer of its own, with nothing in it.
            await handler(
                ctx,
                consumed(
                    BANK_ACCOUNTS,
                    [account_opened(owner, account), account_balance(other, account, "250.00", as_of=START)],
                ),
            )
            store = ProfileStore(session)
            ids = await store.link_customers([("core-deposits", owner), ("core-deposits", other)])
        [new] = published(ctx, ids[("core-deposits", other)])
        assert (new.aum_cny, new.accounts, new.changed) == (0, [], ["identity"])
        [owned] = published(ctx, ids[("core-deposits", owner)])
        assert owned.aum_cny == 250

        # So the roll-forward later that day has nothing to add about it.
        async with transaction(sessions) as session:
            ctx = BatchContext(session=session, clock=clock, source="profile")
            await rollforward_job(views, batch=10_000, interval_s=60).run(ctx)
        assert published(ctx, ids[("core-deposits", other)]) == []
    finally:
        await engine.dispose()
