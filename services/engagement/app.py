"""The engagement service process: internal API, tier consumer and outbox relay."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from contracts import C360_TIERS
from runtime.service import ConsumerSpec, ServiceSpec, create_service_app
from services.engagement import api
from services.engagement.handlers import EngagementHandler
from services.engagement.models import Base
from services.engagement.rules import WelcomeRule
from services.engagement.settings import EngagementSettings

NAME = "engagement"


def create_app(settings: EngagementSettings | None = None) -> FastAPI:
    settings = settings or EngagementSettings()
    config = settings.engagement
    handler = EngagementHandler(
        WelcomeRule(premium_tiers=tuple(config.premium_tiers), due_in=timedelta(days=config.welcome_due_days))
    )
    return create_service_app(
        ServiceSpec(
            name=NAME,
            title="c360 engagement service",
            description="Next-best-action tasks for relationship managers.",
            settings=settings,
            metadata=Base.metadata,
            routers=[api.router],
            consumer=ConsumerSpec(topics=[C360_TIERS], group_id=config.group_id, handler=handler),
            consumer_settings=settings.consumer,
            outbox_settings=settings.outbox,
        )
    )
