"""Scoring settings: `C360_SCORING__*` on top of the shared runtime settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from runtime.settings import ConsumerSettings, OutboxSettings, RuntimeSettings
from services.scoring.policy import DEFAULT_POLICY_FILE
from services.scoring.scores import DEFAULT_SCORE_MODEL_FILE


class ScoringConfig(BaseModel):
    host: str = Field(default="127.0.0.1", description="Interface the internal API listens on.")
    port: int = Field(default=8002, description="Port of the internal API.")
    group_id: str = Field(default="c360-scoring", description="Kafka consumer group.")
    policy_file: Path = Field(default=DEFAULT_POLICY_FILE, description="The tier policy YAML file.")
    score_model_file: Path = Field(
        default=DEFAULT_SCORE_MODEL_FILE, description="The score model YAML file: weights, caps and publish steps."
    )
    grace_interval_s: float = Field(
        default=60, gt=0, description="How often to look for customers whose grace period has run out."
    )
    batch: int = Field(default=500, gt=0, description="Customers per round of the grace sweep and of a re-score.")


class ScoringSettings(RuntimeSettings):
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
