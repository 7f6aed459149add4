"""Index merged_customers by merged_into: each merge redirects earlier redirects to the survivor
(without it, every merge scanned the whole table).

Revision ID: scor0003
Revises: scor0002
Create Date: 2026-11-23 14:23:12.290131
"""

from collections.abc import Sequence

from alembic import op


revision: str = 'scor0003'
down_revision: str | None = 'scor0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_merged_customers_merged_into', 'merged_customers', ['merged_into'], unique=False, schema='scoring')


def downgrade() -> None:
    op.drop_index('ix_merged_customers_merged_into', table_name='merged_customers', schema='scoring')
