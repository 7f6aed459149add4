"""Session-wide real infrastructure: one PostgreSQL and one Kafka-protocol broker per run.

Embedded ones are started unless `DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS` point at servers.
The end-to-end platform's services run their own jobs (segment backfill, campaign dispatch) on
their database all session, so they get a database of their own on the same server: tests that
drive the services' logic directly on `migrated_database` never race a running service.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from c360.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from c360.platform import create_topics, migrate_all
from runtime.db import create_engine


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    postgres = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata", database="c360_test")
    url = postgres.start()
    yield url
    postgres.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    log_file = Path(tmp_path_factory.mktemp("broker")) / "tansu.log"
    broker = EmbeddedBroker(free_port(), log_file)
    yield broker.start()
    broker.stop()


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> str:
    migrate_all(database_url)
    return database_url


def sibling_database(database_url: str, name: str) -> str:
    """The URL of database `name` on the same server as `database_url`, created if it is missing."""

    async def create() -> None:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                found = await autocommit.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
                if not found:
                    await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await engine.dispose()

    asyncio.run(create())
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def platform_database(database_url: str) -> str:
    """The migrated database of the end-to-end platform's service processes."""
    url = sibling_database(database_url, f"{make_url(database_url).database}_platform")
    migrate_all(url)
    return url


@pytest.fixture(scope="session")
def topics(kafka_bootstrap: str) -> str:
    create_topics(kafka_bootstrap, partitions=6)
    return kafka_bootstrap
