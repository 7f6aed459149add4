"""All scoring SQL; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.models import CustomerTier, TierChange


class ScoringStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tiers(self, customer_ids: Iterable[str]) -> dict[str, CustomerTier]:
        ids = sorted(set(customer_ids))
        rows = await self.session.execute(
            select(CustomerTier).where(CustomerTier.customer_id.in_(ids)).with_for_update()
        )
        return {row.customer_id: row for row in rows.scalars()}

    async def save_tiers(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert current tiers (one statement); `since` only moves when the tier changes."""
        if not rows:
            return
        stmt = pg_insert(CustomerTier).values(list(rows))
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[CustomerTier.customer_id],
                set_={
                    name: stmt.excluded[name]
                    for name in (
                        "tier",
                        "since",
                        "measure_cny",
                        "aum_cny",
                        "aum_avg_30d_cny",
                        "branch_id",
                        "updated_at",
                    )
                },
            )
        )

    async def record_changes(self, changes: Sequence[Mapping[str, Any]]) -> None:
        if changes:
            await self.session.execute(insert(TierChange), list(changes))

    async def tier(self, customer_id: str) -> CustomerTier | None:
        return await self.session.get(CustomerTier, customer_id)

    async def history(self, customer_id: str, limit: int = 100) -> Sequence[TierChange]:
        rows = await self.session.execute(
            select(TierChange)
            .where(TierChange.customer_id == customer_id)
            .order_by(TierChange.effective_at.desc(), TierChange.id.desc())
            .limit(limit)
        )
        return rows.scalars().all()
