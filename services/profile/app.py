"""The profile service process: internal API, inbound consumer, daily roll-forward and outbox relay."""

from __future__ import annotations

from fastapi import FastAPI

from contracts import BANK_ACCOUNTS, BANK_CUSTOMERS, BANK_FX_RATES, BANK_INTERACTIONS, BANK_TRANSACTIONS
from runtime.consumer import BatchContext
from runtime.jobs import PeriodicJob
from runtime.service import ConsumerSpec, ServiceSpec, create_service_app
from services.profile import api
from services.profile.handlers import ProfileHandler
from services.profile.identity import IdentityProtector
from services.profile.models import Base
from services.profile.settings import ProfileSettings
from services.profile.store import ProfileStore
from services.profile.view import ViewBuilder

NAME = "profile"
TOPICS = [BANK_CUSTOMERS, BANK_ACCOUNTS, BANK_TRANSACTIONS, BANK_INTERACTIONS, BANK_FX_RATES]


def rollforward_job(views: ViewBuilder, batch: int, interval_s: float) -> PeriodicJob:
    """Once a business day, every customer's 30-day average, behaviour windows and tags move on
    even without events; a customer is published only when a figure actually moved."""

    async def round_(ctx: BatchContext) -> bool:
        store = ProfileStore(ctx.session)
        due = await store.due_for_rollforward(views.business_day(ctx.clock.now()), batch)
        if due:
            await views.recompute(ctx, store, {cid: {"daily"} for cid in due}, only_if_changed=True)
        return len(due) == batch

    return PeriodicJob(name="daily-rollforward", interval_s=interval_s, run=round_)


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    settings = settings or ProfileSettings()
    config = settings.profile
    views = ViewBuilder(config)
    identity = IdentityProtector(settings.identity_key())
    handler = ProfileHandler(identity, config, views)
    app = create_service_app(
        ServiceSpec(
            name=NAME,
            title="c360 profile service",
            description=(
                "The single customer view: identity resolution with merge guards, split and erasure; "
                "accounts, balances, AUM and its 30-day average in CNY; behaviour, interactions and tags; "
                "snapshot reconciliation and source freshness."
            ),
            settings=settings,
            metadata=Base.metadata,
            routers=[api.router],
            consumer=ConsumerSpec(topics=TOPICS, group_id=config.group_id, handler=handler),
            consumer_settings=settings.consumer,
            outbox_settings=settings.outbox,
            jobs=[rollforward_job(views, config.rollforward_batch, config.rollforward_interval_s)],
        )
    )
    app.state.views = views
    return app
