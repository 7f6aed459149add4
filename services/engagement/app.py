"""The engagement service process: internal API, consumer of profiles, tiers and scores, the
scheduled sweep for time-based actions, segment backfills and campaign dispatch, and the outbox relay."""

from __future__ import annotations

from fastapi import FastAPI

from contracts import C360_PROFILES, C360_SCORES, C360_TIERS
from runtime.consumer import BatchContext
from runtime.jobs import PeriodicJob
from runtime.service import ConsumerSpec, ServiceSpec, create_service_app
from services.engagement import api, audience_api
from services.engagement.audiences import Audiences, audience_jobs
from services.engagement.engine import Engagement
from services.engagement.handlers import EngagementHandler
from services.engagement.models import Base
from services.engagement.rules import load_catalogue
from services.engagement.settings import EngagementSettings
from services.engagement.store import EngagementStore

NAME = "engagement"
TOPICS = [C360_PROFILES, C360_TIERS, C360_SCORES]


def sweep_job(engagement: Engagement, batch: int, interval_s: float) -> PeriodicJob:
    """Birthdays, maturities, revisit cadences: rules that fire by the clock, not by an event."""

    async def round_(ctx: BatchContext) -> bool:
        store = EngagementStore(ctx.session)
        due = await store.due_customers(ctx.clock.now(), batch)
        await engagement.evaluate(ctx, store, due)
        await store.save_customers(due.values())
        return len(due) == batch

    return PeriodicJob(name="engagement-sweep", interval_s=interval_s, run=round_)


def create_app(settings: EngagementSettings | None = None) -> FastAPI:
    settings = settings or EngagementSettings()
    config = settings.engagement
    engagement = Engagement(load_catalogue(config.catalogue_file))
    audiences = Audiences(engagement, zone=config.business_timezone, batch=config.batch)
    app = create_service_app(
        ServiceSpec(
            name=NAME,
            title="c360 engagement service",
            description=(
                "Next-best-action tasks for relationship managers from a configured catalogue, under a contact "
                "policy that records every suppression; RM roster and automatic assignment; task lifecycle."
            ),
            settings=settings,
            metadata=Base.metadata,
            routers=[api.router, audience_api.router],
            consumer=ConsumerSpec(
                topics=TOPICS, group_id=config.group_id, handler=EngagementHandler(engagement, audiences)
            ),
            consumer_settings=settings.consumer,
            outbox_settings=settings.outbox,
            jobs=[
                sweep_job(engagement, config.batch, config.sweep_interval_s),
                *audience_jobs(audiences, config.audience_interval_s),
            ],
        )
    )
    app.state.engagement = engagement
    app.state.audiences = audiences
    return app
