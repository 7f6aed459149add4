"""Engagement settings: `C360_ENGAGEMENT__*` on top of the shared runtime settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from runtime.settings import ConsumerSettings, OutboxSettings, RuntimeSettings


class EngagementConfig(BaseModel):
    host: str = Field(default="127.0.0.1", description="Interface the internal API listens on.")
    port: int = Field(default=8003, description="Port of the internal API.")
    group_id: str = Field(default="c360-engagement", description="Kafka consumer group.")
    premium_tiers: list[str] = Field(
        default=["vip", "wealth", "private"], description="Tiers served by a named RM (VIP and above)."
    )
    welcome_due_days: int = Field(default=3, ge=0, description="Days an RM has to make the welcome call.")


class EngagementSettings(RuntimeSettings):
    engagement: EngagementConfig = Field(default_factory=EngagementConfig)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
