"""Profile settings: `C360_PROFILE__*` on top of the shared runtime settings."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, model_validator

from runtime.settings import ConsumerSettings, OutboxSettings, RuntimeSettings, development_secret

#: Numbers bank systems write when the real one is unknown; all-one-character numbers are refused anyway.
DEFAULT_IDENTITY_BLOCKLIST = (
    "123456789012345678",
    "12345678901234567X",
    "110101190001011009",
    "TEST",
    "UNKNOWN",
    "N/A",
)


class ProfileConfig(BaseModel):
    host: str = Field(default="127.0.0.1", description="Interface the internal API listens on.")
    port: int = Field(default=8001, description="Port of the internal API.")
    group_id: str = Field(default="c360-profile", description="Kafka consumer group.")
    identity_hash_key: SecretStr | None = Field(
        default=None, description="HMAC key for identity numbers; generated once in development."
    )
    business_timezone: str = Field(default="Asia/Shanghai", description="Zone that defines a business day.")
    identity_blocklist: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IDENTITY_BLOCKLIST),
        description="Identity numbers that never merge anyone (test values, placeholders), as written anywhere.",
    )
    max_records_per_identity: int = Field(
        default=8,
        ge=2,
        description="An identity number carried by more source records than this merges nobody (shared junk).",
    )
    average_days: int = Field(default=30, ge=1, description="Days in the average daily AUM (月日均).")
    rollforward_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often the daily roll-forward of averages and windows looks for due customers.",
    )
    rollforward_batch: int = Field(default=500, ge=1, description="Customers recomputed per roll-forward round.")


class ProfileSettings(RuntimeSettings):
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

    @model_validator(mode="after")
    def _key_required_outside_development(self) -> ProfileSettings:
        if self.environment != "development" and self.profile.identity_hash_key is None:
            raise ValueError("C360_PROFILE__IDENTITY_HASH_KEY must be set outside development")
        return self

    def identity_key(self) -> str:
        key = self.profile.identity_hash_key
        return key.get_secret_value() if key else development_secret(self.data_dir, "identity-hash-key")
