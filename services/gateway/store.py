"""All gateway SQL: the audit log, kept durably and published to `c360.audit.v1` in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import C360_AUDIT, AuditRecorded, build_event
from runtime.db import runtime_table, transaction
from runtime.outbox import OutboxMessage, write_outbox
from runtime.service import ServiceRuntime
from services.gateway.auth import Principal
from services.gateway.models import AuditRecord, Base

OUTBOX = runtime_table(Base.metadata, "outbox")


async def record_audit(
    runtime: ServiceRuntime,
    principal: Principal,
    customer_ids: Sequence[str | None],
    *,
    route: str,
    method: str,
    status: int,
) -> None:
    """One audit record per customer named (one without a customer when none was), committed
    before the caller gets an answer, and published through the outbox."""
    at = runtime.clock.now()
    rows = [
        {
            "at": at,
            "subject": principal.subject,
            "role": principal.role.value,
            "customer_id": cid,
            "route": route,
            "method": method,
            "status": status,
        }
        for cid in (sorted(set(customer_ids), key=str) or [None])
    ]
    async with transaction(runtime.sessions) as session:
        await session.execute(insert(AuditRecord), rows)
        await write_outbox(session, OUTBOX, [_message(row) for row in rows])
    runtime.relay.wake()


def _message(row: Mapping[str, object]) -> OutboxMessage:
    data = AuditRecorded.model_validate(row)
    return OutboxMessage(
        topic=C360_AUDIT, key=data.subject, event=build_event(data, source="gateway", time=data.at), headers={}
    )


async def audit_page(
    session: AsyncSession,
    *,
    customer_id: str | None,
    subject: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> Sequence[AuditRecord]:
    """Audit records newest first, paged by id."""
    stmt = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
    if customer_id is not None:
        stmt = stmt.where(AuditRecord.customer_id == customer_id)
    if subject is not None:
        stmt = stmt.where(AuditRecord.subject == subject)
    if since is not None:
        stmt = stmt.where(AuditRecord.at >= since)
    if before_id is not None:
        stmt = stmt.where(AuditRecord.id < before_id)
    return (await session.execute(stmt)).scalars().all()
