"""Alembic plumbing shared by every service's migration tree.

Each service keeps its own tree (`services/<name>/migrations`) and its own version table in
its own schema. `env.py` of a tree is two lines that call `run_env` with the service metadata.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from runtime.settings import RuntimeSettings, to_async_url


def alembic_config(migrations_package: str, database_url: str | None = None) -> Config:
    """An Alembic config for the tree in `migrations_package` (e.g. `services.profile.migrations`)."""
    spec = importlib.util.find_spec(migrations_package)
    if spec is None or spec.submodule_search_locations is None:
        raise ValueError(f"no migrations package {migrations_package!r}")
    location = Path(next(iter(spec.submodule_search_locations)))
    config = Config()
    config.set_main_option("script_location", str(location))
    url = database_url or RuntimeSettings().database_url
    config.set_main_option("sqlalchemy.url", to_async_url(url).replace("%", "%%"))
    return config


def upgrade(migrations_package: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_package, database_url), revision)


def check(migrations_package: str, database_url: str) -> None:
    """Raise if the models and the migrations disagree (`alembic check`)."""
    command.check(alembic_config(migrations_package, database_url))


def run_env(metadata: MetaData) -> None:
    """The body of every `env.py`: migrate one schema online, over asyncpg."""
    schema = metadata.schema
    assert schema, "service metadata must name its schema"

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return name == schema if type_ == "schema" else True

    def migrate(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        url = context.config.get_main_option("sqlalchemy.url")
        assert url
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run())
