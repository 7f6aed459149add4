"""Every service's migrations reach head and match its models (`alembic check`)."""

from __future__ import annotations

import pytest

from c360.platform import SERVICES
from runtime import migrations


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_migrations_are_at_head_and_match_the_models(migrated_database: str, service: object) -> None:
    migrations.upgrade(service.migrations_package, migrated_database)  # type: ignore[attr-defined]
    migrations.check(service.migrations_package, migrated_database)  # type: ignore[attr-defined]
