"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runtime.clock import FixedClock
from runtime.db import create_engine, session_factory
from services.engagement.audiences import Audiences
from services.engagement.engine import Engagement
from services.engagement.rules import load_catalogue
from tests.integration.engagement import START, Service


@pytest.fixture
async def service(migrated_database: str) -> AsyncIterator[Service]:
    """The engagement service's logic on the real database, at START on a test clock."""
    engine = create_engine(migrated_database)
    engagement = Engagement(load_catalogue())
    try:
        yield Service(
            session_factory(engine),
            FixedClock(START),
            engagement,
            Audiences(engagement, zone="Asia/Shanghai", batch=50),
        )
    finally:
        await engine.dispose()
