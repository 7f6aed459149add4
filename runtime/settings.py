"""Settings every service shares, read from the environment.

`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL` and `C360_JWT_SECRET` keep their plain names (they
are what operators already set); everything else is `C360_*`. Nested groups use `__`, for
example `C360_CONSUMER__MAX_BATCH=2000`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where the embedded default keeps its database and generated development secret.
DEFAULT_DATA_DIR = Path(".c360")
DEV_SECRET_FILE = "jwt-dev-secret"  # noqa: S105 a file name, not a secret


class ConsumerSettings(BaseModel):
    """How the batch consumer polls and retries."""

    max_batch: int = Field(default=2000, ge=1, description="Most messages handed over in one batch.")
    poll_timeout_ms: int = Field(default=200, ge=1, description="Longest wait for a batch to fill.")
    fetch_max_wait_ms: int = Field(
        default=50,
        ge=1,
        description="Longest time the broker holds a fetch waiting for data; bounds each hop's latency when quiet.",
    )
    retry_initial_s: float = Field(default=0.2, gt=0, description="First backoff after a transient failure.")
    retry_max_s: float = Field(default=10.0, gt=0, description="Longest backoff between retries.")
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description=(
            "Kafka group session timeout. Tansu holds every join for half of it, so it is also how long"
            " a consumer waits for its first batch after a start or a rebalance."
        ),
    )
    max_clock_skew_s: float = Field(
        default=300.0,
        ge=0,
        description="How far ahead of the clock an event's time may be before it is refused as from the future.",
    )


class OutboxSettings(BaseModel):
    """How the outbox relay claims and publishes rows."""

    batch_size: int = Field(default=1000, ge=1, description="Most outbox rows published per round.")
    idle_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="Poll interval when no commit woke the relay: for rows another replica or a crash left.",
    )
    retention_hours: int = Field(default=24, ge=0, description="How long published rows are kept for inspection.")
    purge_interval_s: float = Field(
        default=300.0, gt=0, description="How often rows published longer ago than the retention are deleted."
    )


class RuntimeSettings(BaseSettings):
    """Connection settings shared by all services and the command line."""

    model_config = SettingsConfigDict(
        env_prefix="C360_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    environment: str = Field(default="development", description="`development` or `production`.")
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Local state of the embedded default.")
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "C360_KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers, comma separated.",
    )
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "C360_DATABASE_URL"),
        description="PostgreSQL URL; `postgresql://` is used through asyncpg.",
    )
    database_pool_size: int = Field(
        default=15,
        ge=1,
        description="Connections each service process keeps to PostgreSQL; a request or batch that finds them all "
        "busy waits for one (up to 30 s) rather than opening another.",
    )
    topic_partitions: int = Field(default=6, ge=1, description="Partitions for topics the platform creates.")
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor for topics the platform creates (3 on a real cluster)."
    )
    broker_port: int = Field(default=9092, description="Port of the embedded broker that `c360 up` starts.")
    log_level: str = Field(default="INFO", description="Root log level.")
    log_format: str = Field(default="json", description="`json` or `text`.")


def development_secret(data_dir: Path, name: str = DEV_SECRET_FILE) -> str:
    """Create (once) and return a development secret kept under `data_dir` as `name`."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{name}.{secrets.token_hex(4)}")
    tmp.write_text(secret)
    tmp.chmod(0o600)
    os.replace(tmp, path) if not path.exists() else tmp.unlink()
    return path.read_text().strip()


def to_async_url(url: str) -> str:
    """Turn `postgresql://...` (or `postgres://`) into the `postgresql+asyncpg://` form."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split('://')[0]!r}")


def environment_variables(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads (`C360_` prefix, `__` for nesting, and
    the plain aliases such as `DATABASE_URL`), for checking deployment files against the code."""
    names: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(str(choice) for choice in alias.choices)
                continue
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name.upper()}__")
            else:
                names.add(f"{prefix}{name.upper()}")

    walk(settings, "C360_")
    return names
