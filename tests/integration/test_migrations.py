"""Every service's migrations reach head and match its models (`alembic check`)."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from c360.platform import SERVICES
from runtime import migrations


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_migrations_are_at_head_and_match_the_models(migrated_database: str, service: object) -> None:
    migrations.upgrade(service.migrations_package, migrated_database)  # type: ignore[attr-defined]
    migrations.check(service.migrations_package, migrated_database)  # type: ignore[attr-defined]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
async def test_outbox_payloads_are_stored_uncompressed(migrated_database: str, service: Any) -> None:
    connection = await asyncpg.connect(migrated_database)
    try:
        storage = await connection.fetchval(
            "SELECT attstorage::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'payload'",
            f"{service.name}.outbox",
        )
    finally:
        await connection.close()
    assert storage == "e"  # EXTERNAL: out of line when large, never compressed
