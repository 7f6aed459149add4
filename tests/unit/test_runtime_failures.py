"""How the shared runtime classifies and reports failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from contracts import CloudEvent, TaskEvent, build_event, parse_event
from runtime.consumer import failure_reason, from_the_future
from runtime.errors import install_problem_handlers
from runtime.transient import Backoff, is_transient
from tests.builders import account_balance


class UniqueViolation(Exception):
    sqlstate = "23505"


def test_a_database_failure_reason_names_the_error_but_not_the_statement_parameters() -> None:
    exc = IntegrityError(
        "INSERT INTO profile.source_records (phone) VALUES ($1)", {"phone": "13800001234"}, UniqueViolation("dup")
    )
    assert "13800001234" in str(exc)
    reason = failure_reason(exc)
    assert reason == "handler failed: IntegrityError (SQLSTATE 23505)"


def test_any_other_failure_reason_keeps_its_message() -> None:
    assert failure_reason(ValueError("cannot apply")) == "handler failed: ValueError: cannot apply"


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (OperationalError("SELECT 1", {}, ConnectionRefusedError()), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (PoolTimeout("QueuePool limit of size 15 overflow 0 reached"), True),
        (KafkaConnectionError(), True),
        (asyncpg.exceptions.SerializationError(), True),  # a read run on the driver (OneStatementRead)
        (asyncpg.exceptions.ConnectionDoesNotExistError(), True),
        (asyncpg.exceptions.CannotConnectNowError(), True),
        (asyncpg.exceptions.UniqueViolationError(), False),
        (asyncpg.exceptions.DivisionByZeroError(), False),
        (IntegrityError("INSERT", {}, UniqueViolation()), False),
        (ValueError("bad data"), False),
        (KeyError("x"), False),
    ],
)
def test_only_unavailability_is_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_backoff_doubles_up_to_its_ceiling_and_resets() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_an_event_from_the_future_is_refused_by_its_time_or_an_inbound_timestamp_but_not_a_due_date() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    skew = timedelta(minutes=5)

    def check(event: CloudEvent, topic: str) -> str | None:
        return from_the_future(parse_event(event.to_bytes(), topic=topic), now, skew)

    assert check(account_balance("R", "A", "1.00", as_of=now, at=now + skew), "bank.accounts.v1") is None
    assert "time: in the future" in (
        check(account_balance("R", "A", "1.00", at=now + timedelta(days=1)), "bank.accounts.v1") or ""
    )
    late_as_of = account_balance("R", "A", "1.00", as_of=now + timedelta(hours=1), at=now)
    assert "data.as_of: in the future" in (check(late_as_of, "bank.accounts.v1") or "")
    task = TaskEvent.model_validate(
        {
            "task_id": "T1",
            "customer_id": "C1",
            "action": "welcome",
            "reason": "entered vip",
            "priority": 70,
            "due_at": now + timedelta(days=3),
            "rm_id": None,
            "status": "open",
        }
    )
    assert (
        check(build_event(task, source="engagement", type_="c360.task.created.v1", time=now), "c360.tasks.v1") is None
    )


async def test_an_unavailable_dependency_is_a_503_to_retry_and_any_other_error_a_500() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/database-away")
    async def database_away() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError())

    @app.get("/socket-gone")
    async def socket_gone() -> None:
        raise FileNotFoundError(2, "No such file or directory")  # asyncpg's unix socket while PostgreSQL is down

    @app.get("/bug")
    async def bug() -> None:
        raise ValueError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/database-away", "/socket-gone"):
            response = await client.get(path)
            assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
            assert response.json()["type"].endswith("service-unavailable")
        assert (await client.get("/bug")).status_code == 500
