"""Outbox payloads stored uncompressed: each is written once, read once by the relay and purged
after the retention, and compressing it (pglz, for the payloads above ~2 kB) cost PostgreSQL more
than the space it saves (docs/benchmarks.md, 2026-12-02).

Revision ID: prof0003
Revises: prof0002
Create Date: 2026-12-02 19:40:00.000000
"""

from collections.abc import Sequence

from alembic import op


revision: str = 'prof0003'
down_revision: str | None = 'prof0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('ALTER TABLE profile.outbox ALTER COLUMN payload SET STORAGE EXTERNAL')


def downgrade() -> None:
    op.execute('ALTER TABLE profile.outbox ALTER COLUMN payload SET STORAGE EXTENDED')
