"""Engagement settings: `C360_ENGAGEMENT__*` on top of the shared runtime settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from runtime.settings import ConsumerSettings, OutboxSettings, RuntimeSettings
from services.engagement.rules import DEFAULT_CATALOGUE_FILE


class EngagementConfig(BaseModel):
    host: str = Field(default="127.0.0.1", description="Interface the internal API listens on.")
    port: int = Field(default=8003, description="Port of the internal API.")
    group_id: str = Field(default="c360-engagement", description="Kafka consumer group.")
    catalogue_file: Path = Field(
        default=DEFAULT_CATALOGUE_FILE,
        description="The action catalogue, contact policy and tier grades (YAML).",
    )
    sweep_interval_s: float = Field(
        default=60, gt=0, description="How often the scheduler looks for birthdays, maturities, revisits due."
    )
    batch: int = Field(
        default=500, gt=0, description="Customers per round of the scheduled sweep, a segment backfill or a dispatch."
    )
    audience_interval_s: float = Field(
        default=5, gt=0, description="How often segment backfills and campaign dispatch look for work."
    )
    business_timezone: str = Field(
        default="Asia/Shanghai", description="Zone whose midnight starts a campaign's day (daily volume caps)."
    )


class EngagementSettings(RuntimeSettings):
    engagement: EngagementConfig = Field(default_factory=EngagementConfig)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
