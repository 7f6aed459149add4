"""All gateway SQL: the audit log."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.auth import Principal
from services.gateway.models import AuditRecord


async def record_read(
    session: AsyncSession, principal: Principal, customer_id: str | None, route: str, status: int
) -> None:
    await session.execute(
        insert(AuditRecord).values(
            subject=principal.subject,
            role=principal.role.value,
            customer_id=customer_id,
            route=route,
            status=status,
        )
    )
