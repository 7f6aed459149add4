"""Scoring settings: `C360_SCORING__*` on top of the shared runtime settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from runtime.settings import ConsumerSettings, OutboxSettings, RuntimeSettings
from services.scoring.policy import DEFAULT_POLICY_FILE


class ScoringConfig(BaseModel):
    host: str = Field(default="127.0.0.1", description="Interface the internal API listens on.")
    port: int = Field(default=8002, description="Port of the internal API.")
    group_id: str = Field(default="c360-scoring", description="Kafka consumer group.")
    policy_file: Path = Field(default=DEFAULT_POLICY_FILE, description="The tier policy YAML file.")


class ScoringSettings(RuntimeSettings):
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
