"""Which failures are worth retrying: the database or broker being away, not bad data."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRYABLE_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006", "53300"}


def is_transient(exc: BaseException) -> bool:
    """True for connection loss, timeouts, serialization failures and deadlocks."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, PoolTimeout):  # every pooled connection stayed busy: a wait, not bad data
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return sqlstate in RETRYABLE_SQLSTATES
    if isinstance(exc, asyncpg.PostgresError):  # from a read run on the driver (runtime.db.OneStatementRead)
        return exc.sqlstate in RETRYABLE_SQLSTATES
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | NodeNotReadyError | RequestTimedOutError):
        return True
    # OSError covers refused and reset connections; TimeoutError is asyncio's too.
    return isinstance(exc, OSError | TimeoutError)


class Backoff:
    """Exponential backoff with a ceiling; reset after a success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2.0**self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
