"""All gateway SQL: the audit log, kept durably and published to `c360.audit.v1` in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import C360_AUDIT, AuditRecorded, build_event
from runtime.db import runtime_table, transaction
from runtime.outbox import OutboxMessage, write_outbox
from runtime.service import ServiceRuntime
from runtime.transient import is_transient
from services.gateway.auth import Principal
from services.gateway.models import AuditRecord, Base

OUTBOX = runtime_table(Base.metadata, "outbox")


AUDIT_LOG = runtime_table(Base.metadata, "audit_log")
#: How soon after its commit the relay is asked to publish an audit record on `c360.audit.v1`
#: (docs/api.md); a relay that is failing publishes it when the broker is back.
AUDIT_PUBLISHED_WITHIN_S = 0.1


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
    writer: AuditWriter = runtime.extras["audit_writer"]
    await writer.write(rows)


class AuditWriter:
    """Group commit for the audit log: the records of requests that arrive while a transaction is
    being written are written together in the next one, and each request is answered only when
    the transaction holding its records has committed. Under load one commit (and one relay
    round) serves many requests; a lone request waits for no one.

    If a shared transaction fails because the database is unavailable, every request in it gets
    that error (as each would have alone); if it fails for any other reason, each request's
    records are tried again in a transaction of their own, so one request's failure is never
    another's."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self._pending: list[tuple[Sequence[Mapping[str, object]], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, rows: Sequence[Mapping[str, object]]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._pending.append((rows, done))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="gateway-audit-writer")
        await done

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._commit([row for rows, _ in batch for row in rows])
                except Exception as shared:
                    if len(batch) == 1 or is_transient(shared):
                        for _, done in batch:
                            _settle(done, shared)
                        continue
                    for rows, done in batch:
                        try:
                            await self._commit(rows)
                        except Exception as own:
                            _settle(done, own)
                        else:
                            _settle(done, None)
                else:
                    for _, done in batch:
                        _settle(done, None)
        finally:
            self._flushing = None

    async def _commit(self, rows: Sequence[Mapping[str, object]]) -> None:
        async with transaction(self.runtime.sessions) as session:
            await session.execute(insert(AUDIT_LOG), rows)
            # Published within AUDIT_PUBLISHED_WITHIN_S, not at once: one relay round then serves
            # the commits of many requests. A round after every commit under load cost the
            # gateway a tenth of its CPU and the broker a produce request each.
            await write_outbox(session, OUTBOX, [_message(row) for row in rows], within_s=AUDIT_PUBLISHED_WITHIN_S)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # the request was cancelled while it waited
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


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
