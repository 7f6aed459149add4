"""Scoring against the real database, with time moved by the test clock: the exit mechanism with
its grace sweep, stale and merged profiles, erasure and a re-score under a changed policy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts import C360_PROFILES, CloudEvent, CustomerErased, CustomerMerged, ScoreUpdated, TierChanged, build_event
from runtime.clock import FixedClock
from runtime.consumer import BatchContext
from runtime.db import create_engine, session_factory, transaction
from runtime.jobs import PeriodicJob
from runtime.outbox import OutboxMessage
from services.scoring.app import grace_job
from services.scoring.assessor import Assessor
from services.scoring.handlers import ScoringHandler
from services.scoring.models import CustomerScore
from services.scoring.policy import load_policy
from services.scoring.rescore import RescoreProgress, rescore, rescore_job
from services.scoring.scores import load_score_model
from services.scoring.store import ScoringStore, standing_row
from tests.builders import consumed, profile_updated, unique_ref

M = TypeVar("M", bound=BaseModel)

# Far from the wall clock, so the running platform's own grace sweep never finds these customers due.
START = datetime(2031, 1, 5, 3, 0, tzinfo=UTC)


@dataclass
class Scoring:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: FixedClock
    assessor: Assessor

    async def consume(self, *events: CloudEvent) -> list[OutboxMessage]:
        async with transaction(self.sessions) as session:
            ctx = BatchContext(session=session, clock=self.clock, source="scoring")
            await ScoringHandler(self.assessor)(ctx, consumed(C360_PROFILES, events))
        return ctx.outbox

    async def drain(self, job: PeriodicJob) -> list[OutboxMessage]:
        """Run the job's rounds, a transaction each, until nothing more is due; what they published."""
        outbox: list[OutboxMessage] = []
        more = True
        while more:
            async with transaction(self.sessions) as session:
                ctx = BatchContext(session=session, clock=self.clock, source="scoring")
                more = await job.run(ctx)
            outbox += ctx.outbox
        return outbox

    async def sweep(self) -> list[OutboxMessage]:
        return await self.drain(grace_job(self.assessor, batch=100, interval_s=60))

    @asynccontextmanager
    async def store(self) -> AsyncIterator[ScoringStore]:
        async with self.sessions() as session:
            yield ScoringStore(session)


@pytest.fixture
async def scoring(migrated_database: str) -> AsyncIterator[Scoring]:
    engine = create_engine(migrated_database)
    try:
        yield Scoring(engine, session_factory(engine), FixedClock(START), Assessor(load_policy(), load_score_model()))
    finally:
        await engine.dispose()


def of(messages: Sequence[OutboxMessage], customer_id: str, model: type[M]) -> list[M]:
    return [
        model.model_validate(m.event.data)
        for m in messages
        if m.key == customer_id and m.event.type == getattr(model, "EVENT_TYPE", None)
    ]


async def test_a_vip_falls_on_watch_and_is_downgraded_by_the_sweep_exactly_when_grace_ends(scoring: Scoring) -> None:
    cid = unique_ref("C")
    first = await scoring.consume(profile_updated(cid, "350000.00", at=scoring.clock.now()))
    [entered] = of(first, cid, TierChanged)
    assert (entered.from_tier, entered.to_tier, entered.watch_since) == (None, "vip", None)
    [score] = of(first, cid, ScoreUpdated)
    assert any(r.factor == "aum" for r in score.reasons)

    scoring.clock.advance(timedelta(days=1))
    fell = await scoring.consume(profile_updated(cid, "180000.00", at=scoring.clock.now()))
    [watch] = of(fell, cid, TierChanged)
    watch_since = scoring.clock.now()
    assert (watch.from_tier, watch.to_tier, watch.watch_since) == ("vip", "vip", watch_since)
    assert "on watch" in watch.reason

    scoring.clock.advance(timedelta(days=2))
    lower = await scoring.consume(profile_updated(cid, "170000.00", at=scoring.clock.now()))
    assert of(lower, cid, TierChanged) == []  # still on watch: nothing new to say

    scoring.clock.at = watch_since + timedelta(days=90) - timedelta(seconds=1)
    assert of(await scoring.sweep(), cid, TierChanged) == []
    scoring.clock.at = watch_since + timedelta(days=90)
    [down] = of(await scoring.sweep(), cid, TierChanged)
    assert (down.from_tier, down.to_tier, down.measure_cny) == ("vip", "affluent", 170000)
    assert "the whole 90-day grace period" in down.reason
    assert of(await scoring.sweep(), cid, TierChanged) == []  # published once

    async with scoring.store() as store:
        tier = await store.tier(cid)
        history = await store.history([cid])
    assert tier is not None
    assert (tier.tier, tier.watch_since) == ("affluent", None)
    assert [(h.from_tier, h.to_tier) for h in history] == [("vip", "affluent"), ("vip", "vip"), (None, "vip")]


async def test_climbing_back_during_grace_keeps_the_tier(scoring: Scoring) -> None:
    cid = unique_ref("C")
    await scoring.consume(profile_updated(cid, "1200000.00", at=scoring.clock.now()))
    scoring.clock.advance(timedelta(days=1))
    await scoring.consume(profile_updated(cid, "900000.00", at=scoring.clock.now()))
    scoring.clock.advance(timedelta(days=30))
    back = await scoring.consume(profile_updated(cid, "1000000.00", at=scoring.clock.now()))
    [ended] = of(back, cid, TierChanged)
    assert (ended.from_tier, ended.to_tier, ended.watch_since) == ("wealth", "wealth", None)
    scoring.clock.advance(timedelta(days=100))
    assert of(await scoring.sweep(), cid, TierChanged) == []
    async with scoring.store() as store:
        tier = await store.tier(cid)
    assert tier is not None
    assert (tier.tier, tier.watch_since) == ("wealth", None)


async def test_a_stale_or_repeated_profile_changes_nothing(scoring: Scoring) -> None:
    cid = unique_ref("C")
    newer = profile_updated(cid, "250000.00", at=scoring.clock.now())
    older = profile_updated(cid, "10000.00", at=scoring.clock.now() - timedelta(minutes=5))
    assert len(of(await scoring.consume(newer), cid, TierChanged)) == 1
    repeated = await scoring.consume(older, newer)
    assert repeated == []  # nothing moved, so nothing is published (not even scores)
    assert await scoring.consume(older) == []
    async with scoring.store() as store:
        tier = await store.tier(cid)
    assert tier is not None
    assert (tier.tier, tier.measure_cny) == ("vip", 250000)


async def test_a_merged_customer_answers_with_the_survivor_and_leaves_the_distribution(scoring: Scoring) -> None:
    survivor, merged = unique_ref("S"), unique_ref("M")
    now = scoring.clock.now()
    await scoring.consume(profile_updated(survivor, "60000.00", at=now), profile_updated(merged, "70000.00", at=now))
    async with scoring.store() as store:
        before = {key: row.customers for key, row in (await store.distribution([Decimal(0)])).by_tier.items()}
    merge = CustomerMerged(surviving_customer_id=survivor, merged_customer_id=merged, reason="same resident id")
    late = profile_updated(merged, "70000.00", at=now + timedelta(seconds=1))
    await scoring.consume(build_event(merge, source="profile", time=now), late)
    async with scoring.store() as store:
        after = {key: row.customers for key, row in (await store.distribution([Decimal(0)])).by_tier.items()}
        assert await store.resolve(merged) == survivor
        assert await store.tier(merged) is None
        assert await store.absorbed(survivor) == [merged]
    assert after["affluent"] == before["affluent"] - 1


async def test_the_standing_answers_for_the_survivor_with_its_tier_and_scores_in_one_read(scoring: Scoring) -> None:
    survivor, merged, unknown = unique_ref("S"), unique_ref("M"), unique_ref("U")
    now = scoring.clock.now()
    await scoring.consume(profile_updated(survivor, "250000.00", at=now), profile_updated(merged, "70000.00", at=now))
    merge = CustomerMerged(surviving_customer_id=survivor, merged_customer_id=merged, reason="same resident id")
    await scoring.consume(build_event(merge, source="profile", time=now))
    standing = await standing_row(scoring.engine, merged)
    nothing = await standing_row(scoring.engine, unknown)
    async with scoring.store() as store:
        tier, score = await store.tier(survivor), await store.score(survivor)
    assert tier is not None
    assert score is not None
    assert (standing.customer_id, standing.tier_of, standing.scores_of) == (survivor, survivor, survivor)
    assert (standing.tier, standing.since, standing.watch_since, standing.measure_cny) == (
        tier.tier,
        tier.since,
        tier.watch_since,
        tier.measure_cny,
    )
    assert (standing.value_score, standing.churn_risk, standing.reasons) == (
        score.value_score,
        score.churn_risk,
        score.reasons,
    )
    assert (nothing.customer_id, nothing.tier_of, nothing.scores_of) == (unknown, None, None)


async def test_the_profile_is_kept_as_it_was_sent_and_the_reasons_as_published(scoring: Scoring) -> None:
    cid = unique_ref("C")
    sent = profile_updated(cid, "350000.00", at=scoring.clock.now(), tags=["payroll"])
    [score] = of(await scoring.consume(sent), cid, ScoreUpdated)
    async with scoring.store() as store:
        tier = await store.tier(cid)
        reasons = await store.session.scalar(select(CustomerScore.reasons).where(CustomerScore.customer_id == cid))
    assert tier is not None
    assert tier.profile == sent.data
    assert reasons == [reason.model_dump(mode="json") for reason in score.reasons]


async def test_erasure_drops_the_birth_date_and_keeps_the_figures(scoring: Scoring) -> None:
    cid = unique_ref("C")
    now = scoring.clock.now()
    erased = build_event(CustomerErased(customer_id=cid, erased_at=now), source="profile", time=now)
    await scoring.consume(profile_updated(cid, "80000.00", at=now), erased)
    async with scoring.store() as store:
        tier = await store.tier(cid)
    assert tier is not None
    assert tier.profile is not None
    assert "birth_date" not in tier.profile
    assert (tier.tier, tier.aum_cny) == ("affluent", 80000)


async def test_a_rescore_under_a_new_policy_publishes_real_changes_once(
    scoring: Scoring, migrated_database: str, tmp_path: Path
) -> None:
    vip, affluent = unique_ref("V"), unique_ref("A")
    now = scoring.clock.now()
    await scoring.consume(profile_updated(vip, "350000.00", at=now), profile_updated(affluent, "60000.00", at=now))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "measure: aum_avg_30d_cny\ntiers:\n"
        '  - {name: mass, floor: "0"}\n  - {name: affluent, floor: "50000"}\n  - {name: vip, floor: "400000"}\n'
    )
    stricter = Assessor(load_policy(policy), load_score_model())

    async def run() -> list[OutboxMessage]:
        progress = RescoreProgress()
        outbox = await scoring.drain(rescore_job(stricter, 200, progress))
        assert progress.customers >= 2
        return outbox

    first = await run()
    [watch] = of(first, vip, TierChanged)
    assert (watch.from_tier, watch.to_tier, watch.watch_since) == ("vip", "vip", now)  # the exit rule still holds
    assert of(first, affluent, TierChanged) == []
    assert of(await run(), vip, TierChanged) == []

    # The command's own entry point runs the same job through the job runner.
    progress = await rescore(migrated_database, stricter, 500, clock=scoring.clock)
    assert progress.customers >= 2
