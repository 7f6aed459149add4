"""Bearer tokens, scope and masking of the gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from runtime.errors import Unauthorized
from services.gateway.auth import Principal, Role, issue_token, verify_token
from services.gateway.masking import mask_email, mask_phone
from services.gateway.views import in_scope

SECRET = "s" * 48
NOW = datetime.now(UTC)


def token(**overrides: object) -> str:
    claims: dict[str, object] = {"sub": "u1", "role": "admin", "exp": NOW + timedelta(minutes=5)}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


def test_a_token_round_trips_with_its_claims() -> None:
    raw = issue_token(
        SECRET, subject="rm-7", role=Role.RM, now=NOW, ttl=timedelta(minutes=5), rm_id="RM7", branch_id="BR1"
    )
    assert verify_token(raw, SECRET) == Principal("rm-7", Role.RM, "RM7", "BR1")


@pytest.mark.parametrize(
    "raw",
    [
        token(exp=NOW - timedelta(minutes=5)),
        token(role="superuser"),
        token(sub=None),
        token(role="rm"),
        token(role="supervisor"),
        jwt.encode({"sub": "u1", "role": "admin", "exp": NOW + timedelta(minutes=5)}, "wrong" * 10, algorithm="HS256"),
        jwt.encode({"sub": "u1", "role": "admin", "exp": NOW + timedelta(minutes=5)}, None, algorithm="none"),
        "not-a-token",
    ],
    ids=[
        "expired",
        "unknown-role",
        "no-subject",
        "rm-without-rm-id",
        "supervisor-without-branch",
        "wrong-key",
        "alg-none",
        "garbage",
    ],
)
def test_defective_tokens_are_refused_as_unauthorized(raw: str) -> None:
    with pytest.raises(Unauthorized):
        verify_token(raw, SECRET)


@pytest.mark.parametrize(
    ("principal", "branch", "rm", "visible"),
    [
        (Principal("a", Role.ADMIN), "BR1", None, True),
        (Principal("a", Role.ANALYST), "BR1", None, True),
        (Principal("s", Role.SUPERVISOR, branch_id="BR1"), "BR1", None, True),
        (Principal("s", Role.SUPERVISOR, branch_id="BR1"), "BR2", None, False),
        (Principal("r", Role.RM, rm_id="RM1"), "BR1", "RM1", True),
        (Principal("r", Role.RM, rm_id="RM1"), "BR1", "RM2", False),
        (Principal("r", Role.RM, rm_id="RM1"), "BR1", None, False),
        (Principal("x", Role.SERVICE), "BR1", None, False),
    ],
)
def test_scope_follows_the_role(principal: Principal, branch: str, rm: str | None, visible: bool) -> None:
    assert in_scope(principal, branch, rm) is visible


def test_phones_and_emails_are_masked() -> None:
    assert mask_phone("13812345678") == "138******78"
    assert mask_phone("123") == "***"
    assert mask_email("wang.wei@example.cn") == "w*******@example.cn"
    assert mask_phone(None) is None
