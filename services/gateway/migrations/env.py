"""Alembic environment of the gateway schema."""

from runtime.migrations import run_env
from services.gateway.models import Base

run_env(Base.metadata)
