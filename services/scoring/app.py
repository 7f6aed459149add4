"""The scoring service process: internal API, profile consumer and outbox relay."""

from __future__ import annotations

from fastapi import FastAPI

from contracts import C360_PROFILES
from runtime.service import ConsumerSpec, ServiceSpec, create_service_app
from services.scoring import api
from services.scoring.handlers import ScoringHandler
from services.scoring.models import Base
from services.scoring.policy import load_policy
from services.scoring.settings import ScoringSettings

NAME = "scoring"


def create_app(settings: ScoringSettings | None = None) -> FastAPI:
    settings = settings or ScoringSettings()
    handler = ScoringHandler(load_policy(settings.scoring.policy_file))
    return create_service_app(
        ServiceSpec(
            name=NAME,
            title="c360 scoring service",
            description="Value tiers decided by the configured policy, with every change kept.",
            settings=settings,
            metadata=Base.metadata,
            routers=[api.router],
            consumer=ConsumerSpec(topics=[C360_PROFILES], group_id=settings.scoring.group_id, handler=handler),
            consumer_settings=settings.consumer,
            outbox_settings=settings.outbox,
        )
    )
