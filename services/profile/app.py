"""The profile service process: internal API, inbound consumer and outbox relay."""

from __future__ import annotations

from fastapi import FastAPI

from contracts import BANK_ACCOUNTS, BANK_CUSTOMERS, BANK_FX_RATES
from runtime.service import ConsumerSpec, ServiceSpec, create_service_app
from services.profile import api
from services.profile.handlers import ProfileHandler
from services.profile.identity import IdentityProtector
from services.profile.models import Base
from services.profile.settings import ProfileSettings

NAME = "profile"
TOPICS = [BANK_CUSTOMERS, BANK_ACCOUNTS, BANK_FX_RATES]


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    settings = settings or ProfileSettings()
    handler = ProfileHandler(IdentityProtector(settings.identity_key()), settings.profile.business_timezone)
    return create_service_app(
        ServiceSpec(
            name=NAME,
            title="c360 profile service",
            description="The single customer view: identity, accounts, balances and AUM in CNY.",
            settings=settings,
            metadata=Base.metadata,
            routers=[api.router],
            consumer=ConsumerSpec(topics=TOPICS, group_id=settings.profile.group_id, handler=handler),
            consumer_settings=settings.consumer,
            outbox_settings=settings.outbox,
        )
    )
