"""How the shared runtime classifies and reports failures."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import IntegrityError, OperationalError

from runtime.consumer import failure_reason
from runtime.transient import Backoff, is_transient


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
        (KafkaConnectionError(), True),
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
