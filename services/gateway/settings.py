"""Gateway settings: `C360_GATEWAY__*`, plus `C360_JWT_SECRET`."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator

from runtime.settings import OutboxSettings, RuntimeSettings, development_secret


class GatewayConfig(BaseModel):
    host: str = Field(default="127.0.0.1", description="Interface the public API listens on.")
    port: int = Field(default=8000, description="Port of the public API.")
    profile_url: str = Field(default="http://127.0.0.1:8001", description="Profile service base URL.")
    scoring_url: str = Field(default="http://127.0.0.1:8002", description="Scoring service base URL.")
    engagement_url: str = Field(default="http://127.0.0.1:8003", description="Engagement service base URL.")
    upstream_timeout_s: float = Field(default=3.0, gt=0, description="Timeout for each call to a service.")
    unmasked_roles: list[str] = Field(
        default=["admin"],
        description="Roles that see phones and e-mails in clear (identity numbers are only ever kept masked).",
    )
    token_ttl_minutes: int = Field(default=480, ge=1, description="Lifetime of tokens printed by `c360 token`.")
    jwt_algorithm: Literal["HS256", "RS256"] = Field(
        default="HS256", description="HS256 with C360_JWT_SECRET, or RS256 with `jwt_public_key`."
    )
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key that verifies RS256 tokens (the issuer keeps the private key)."
    )
    max_events_per_request: int = Field(default=500, ge=1, le=10_000, description="Most events per POST /v1/events.")
    rate_limit_per_minute: int = Field(
        default=600, ge=1, description="Requests per client (token subject, else address) per minute, per replica."
    )
    large_transaction_cny: Decimal = Field(
        default=Decimal(50_000), ge=0, description="Transactions from this amount up show on the timeline."
    )


class GatewaySettings(RuntimeSettings):
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    jwt_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("C360_JWT_SECRET"),
        description="HS256 secret for bearer tokens; generated once in development.",
    )

    @model_validator(mode="after")
    def _secret_required_outside_development(self) -> GatewaySettings:
        if self.gateway.jwt_algorithm == "RS256":
            if not self.gateway.jwt_public_key:
                raise ValueError("RS256 needs C360_GATEWAY__JWT_PUBLIC_KEY")
        elif self.environment != "development" and self.jwt_secret is None:
            raise ValueError("C360_JWT_SECRET must be set outside development")
        return self

    def verification_key(self) -> str:
        """What verifies bearer tokens: the RS256 public key, or the HS256 secret."""
        if self.gateway.jwt_algorithm == "RS256":
            assert self.gateway.jwt_public_key is not None
            return self.gateway.jwt_public_key
        return self.resolved_jwt_secret()

    def resolved_jwt_secret(self) -> str:
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return development_secret(self.data_dir)
