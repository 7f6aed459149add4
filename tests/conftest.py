"""Session-wide real infrastructure: one PostgreSQL and one Kafka-protocol broker per run.

Embedded ones are started unless `DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS` point at servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from c360.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from c360.platform import create_topics, migrate_all


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


@pytest.fixture(scope="session")
def topics(kafka_bootstrap: str) -> str:
    create_topics(kafka_bootstrap, partitions=6)
    return kafka_bootstrap
