"""Profile settings: `C360_PROFILE__*` on top of the shared runtime settings."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, model_validator

from runtime.settings import ConsumerSettings, OutboxSettings, RuntimeSettings, development_secret


class ProfileConfig(BaseModel):
    host: str = Field(default="127.0.0.1", description="Interface the internal API listens on.")
    port: int = Field(default=8001, description="Port of the internal API.")
    group_id: str = Field(default="c360-profile", description="Kafka consumer group.")
    identity_hash_key: SecretStr | None = Field(
        default=None, description="HMAC key for identity numbers; generated once in development."
    )
    business_timezone: str = Field(default="Asia/Shanghai", description="Zone that defines a business day.")


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
