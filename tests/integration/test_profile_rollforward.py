"""The profile's daily roll-forward against the real database, with time moved by the test clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import CloudEvent, ProfileUpdated
from runtime.clock import FixedClock
from runtime.consumer import BatchContext
from runtime.db import create_engine, session_factory, transaction
from services.profile.app import rollforward_job
from services.profile.handlers import ProfileHandler
from services.profile.identity import IdentityProtector
from services.profile.settings import ProfileConfig
from services.profile.store import ProfileStore
from services.profile.view import ViewBuilder
from tests.builders import account_balance, account_opened, consumed, transaction_posted, unique_ref

# Far from the wall clock, so the running platform's own roll-forward never has this day.
START = datetime(2030, 1, 10, 4, 0, tzinfo=UTC)


def published(ctx: BatchContext, customer_id: str) -> list[ProfileUpdated]:
    found = []
    for message in ctx.outbox:
        data = message.event.data
        if message.key == customer_id and data.get("aum_avg_30d_cny") is not None:
            found.append(ProfileUpdated.model_validate(data))
    return found


@dataclass
class Profile:
    """The profile service's handler and roll-forward job on the real database, at a test clock."""

    sessions: async_sessionmaker[AsyncSession]
    clock: FixedClock
    views: ViewBuilder
    handler: ProfileHandler

    async def apply(self, events: Sequence[CloudEvent]) -> BatchContext:
        async with transaction(self.sessions) as session:
            ctx = BatchContext(session=session, clock=self.clock, source="profile")
            await self.handler(ctx, consumed(None, list(events)))
        return ctx

    async def roll_forward(self) -> BatchContext:
        job = rollforward_job(self.views, batch=10_000, interval_s=60)
        async with transaction(self.sessions) as session:
            ctx = BatchContext(session=session, clock=self.clock, source="profile")
            while await job.run(ctx):
                pass
        return ctx

    async def customer_of(self, ref: str) -> str:
        async with transaction(self.sessions) as session:
            links = await ProfileStore(session).link_customers([("core-deposits", ref)])
        return links[("core-deposits", ref)]


@pytest.fixture
async def profile(migrated_database: str) -> AsyncIterator[Profile]:
    engine = create_engine(migrated_database)
    config = ProfileConfig()
    views = ViewBuilder(config)
    try:
        yield Profile(
            session_factory(engine),
            FixedClock(START),
            views,
            ProfileHandler(IdentityProtector("test-key"), config, views),
        )
    finally:
        await engine.dispose()


async def test_the_30_day_average_moves_each_day_without_events_and_publishes_only_when_it_moved(
    profile: Profile,
) -> None:
    ref = unique_ref("ROLL")
    ctx = await profile.apply(
        [account_opened(ref, f"{ref}-TD"), account_balance(ref, f"{ref}-TD", "30000.00", as_of=START)]
    )
    customer_id = await profile.customer_of(ref)
    [first] = published(ctx, customer_id)
    assert first.aum_avg_30d_cny == 1000

    averages = []
    for _ in range(3):
        profile.clock.advance(timedelta(days=1))
        [update] = published(await profile.roll_forward(), customer_id)
        assert "aum_avg_30d" in update.changed
        averages.append(update.aum_avg_30d_cny)
    assert [str(a) for a in averages] == ["2000.00", "3000.00", "4000.00"]

    # Later the same day there is nothing due, so nothing is published twice.
    assert published(await profile.roll_forward(), customer_id) == []


async def test_a_customer_an_event_only_names_is_published_by_the_batch_that_creates_it(profile: Profile) -> None:
    owner, other = unique_ref("OWN"), unique_ref("OTHER")
    account = f"{owner}-CUR"
    # The balance names another customer_ref than the account's owner: that ref gets a customer of
    # its own, with nothing in it.
    ctx = await profile.apply([account_opened(owner, account), account_balance(other, account, "250.00", as_of=START)])
    [new] = published(ctx, await profile.customer_of(other))
    assert (new.aum_cny, new.accounts, new.changed) == (0, [], ["identity"])
    [owned] = published(ctx, await profile.customer_of(owner))
    assert owned.aum_cny == 250
    # So the roll-forward later that day has nothing to add about it.
    assert published(await profile.roll_forward(), await profile.customer_of(other)) == []


async def test_a_balance_alone_moves_money_and_keeps_the_days_activity_until_activity_or_a_new_day(
    profile: Profile,
) -> None:
    ref = unique_ref("MONEY")
    account = f"{ref}-CUR"
    # Inside the 30-day window at START, outside it two hours later.
    old = transaction_posted(ref, account, "80.00", posted_at=START - timedelta(days=29, hours=23))
    ctx = await profile.apply([account_opened(ref, account), account_balance(ref, account, "500.00", as_of=START), old])
    customer_id = await profile.customer_of(ref)
    [first] = published(ctx, customer_id)
    assert first.behaviour is not None
    assert first.behaviour.last_30d.count == 1

    profile.clock.advance(timedelta(hours=2))
    [money] = published(
        await profile.apply([account_balance(ref, account, "900.00", as_of=START + timedelta(hours=2), version=2)]),
        customer_id,
    )
    assert (money.aum_cny, money.changed) == (900, ["balances"])
    assert money.behaviour == first.behaviour  # the activity derived today still stands
    assert money.tags == first.tags

    new = transaction_posted(ref, account, "20.00", posted_at=START + timedelta(hours=2))
    [derived] = published(await profile.apply([new]), customer_id)
    assert derived.behaviour is not None
    assert derived.behaviour.last_30d.count == 1  # the old one has left the window, the new one entered
    assert derived.behaviour.last_90d.count == 2

    profile.clock.advance(timedelta(days=1))
    [next_day] = published(
        await profile.apply([account_balance(ref, account, "950.00", as_of=profile.clock.now(), version=3)]),
        customer_id,
    )
    assert next_day.behaviour is not None
    assert next_day.behaviour.last_30d.count == 1
    assert next_day.behaviour.last_30d.debit_cny == 20  # derived again on a new business day
