"""The scoring service process: internal API, profile consumer, grace-period sweep and outbox relay."""

from __future__ import annotations

from fastapi import FastAPI

from contracts import C360_PROFILES
from runtime.consumer import BatchContext
from runtime.jobs import PeriodicJob
from runtime.service import ConsumerSpec, ServiceSpec, create_service_app
from services.scoring import api
from services.scoring.assessor import Assessor, stored_subject
from services.scoring.handlers import ScoringHandler
from services.scoring.models import Base
from services.scoring.policy import load_policy
from services.scoring.scores import load_score_model
from services.scoring.settings import ScoringSettings
from services.scoring.store import ScoringStore

NAME = "scoring"
TOPICS = [C360_PROFILES]


def grace_job(assessor: Assessor, batch: int, interval_s: float) -> PeriodicJob:
    """Downgrade customers whose grace period ran out, though no event arrived to say so."""

    async def round_(ctx: BatchContext) -> bool:
        store = ScoringStore(ctx.session)
        due = await store.due_downgrades(assessor.policy, ctx.clock.now(), batch)
        await assessor.assess(ctx, store, [stored_subject(row) for row in due])
        return len(due) == batch

    return PeriodicJob(name="tier-grace", interval_s=interval_s, run=round_)


def create_assessor(settings: ScoringSettings) -> Assessor:
    return Assessor(load_policy(settings.scoring.policy_file), load_score_model(settings.scoring.score_model_file))


def create_app(settings: ScoringSettings | None = None) -> FastAPI:
    settings = settings or ScoringSettings()
    config = settings.scoring
    assessor = create_assessor(settings)
    app = create_service_app(
        ServiceSpec(
            name=NAME,
            title="c360 scoring service",
            description=(
                "Value tiers decided by the configured policy with the exit mechanism (watch and grace period), "
                "explainable value score, churn risk and risk flags, and the tier-distribution report."
            ),
            settings=settings,
            metadata=Base.metadata,
            routers=[api.router],
            consumer=ConsumerSpec(topics=TOPICS, group_id=config.group_id, handler=ScoringHandler(assessor)),
            consumer_settings=settings.consumer,
            outbox_settings=settings.outbox,
            jobs=[grace_job(assessor, config.batch, config.grace_interval_s)],
        )
    )
    app.state.assessor = assessor
    return app
