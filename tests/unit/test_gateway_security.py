"""Bearer tokens, scope and masking of the gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from runtime.errors import TooManyRequests, Unauthorized
from services.gateway.auth import Principal, RateLimiter, Role, issue_token, verify_token
from services.gateway.masking import mask_email, mask_phone
from services.gateway.views import in_scope, scope_filters

SECRET = "s" * 48


def now() -> datetime:
    return datetime.now(UTC)


def token(**overrides: object) -> str:
    claims: dict[str, object] = {"sub": "u1", "role": "admin", "exp": now() + timedelta(minutes=5)}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


def test_a_token_round_trips_with_its_claims() -> None:
    raw = issue_token(
        SECRET, subject="rm-7", role=Role.RM, now=now(), ttl=timedelta(minutes=5), rm_id="RM7", branch_id="BR1"
    )
    assert verify_token(raw, SECRET) == Principal("rm-7", Role.RM, "RM7", "BR1")


@pytest.mark.parametrize(
    "raw",
    [
        token(exp=now() - timedelta(minutes=5)),
        token(role="superuser"),
        token(sub=None),
        token(role="rm"),
        token(role="supervisor"),
        jwt.encode(
            {"sub": "u1", "role": "admin", "exp": now() + timedelta(minutes=5)}, "wrong" * 10, algorithm="HS256"
        ),
        jwt.encode({"sub": "u1", "role": "admin", "exp": now() + timedelta(minutes=5)}, None, algorithm="none"),
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


def _rsa_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_rs256_tokens_verify_with_the_public_key_and_nothing_else() -> None:
    private, public = _rsa_pair()
    claims = {"sub": "svc", "role": "analyst", "exp": now() + timedelta(minutes=5)}
    signed = jwt.encode(claims, private, algorithm="RS256")
    assert verify_token(signed, public, "RS256") == Principal("svc", Role.ANALYST)
    _, other = _rsa_pair()
    with pytest.raises(Unauthorized):
        verify_token(signed, other, "RS256")  # signed by someone else
    with pytest.raises(Unauthorized):
        # An HS256 token "signed" with the public key (the classic confusion attack) is refused.
        verify_token(jwt.encode(claims, SECRET, algorithm="HS256"), public, "RS256")


def test_the_rate_limit_answers_429_with_retry_after_and_refills() -> None:
    clock = [100.0]
    limiter = RateLimiter(per_minute=3, monotonic=lambda: clock[0])
    for _ in range(3):
        limiter.check("sub:u1")
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("sub:u1")
    assert refused.value.status == 429
    assert refused.value.response_headers == {"Retry-After": "20"}
    limiter.check("sub:u2")  # per client
    clock[0] += 20
    limiter.check("sub:u1")


@pytest.mark.parametrize(
    ("principal", "asked", "scoped"),
    [
        (Principal("r", Role.RM, rm_id="RM1"), (None, None), ("RM1", None)),
        (Principal("r", Role.RM, rm_id="RM1"), ("RM2", None), None),
        (Principal("s", Role.SUPERVISOR, branch_id="B1"), ("RM2", None), ("RM2", "B1")),
        (Principal("s", Role.SUPERVISOR, branch_id="B1"), (None, "B2"), None),
        (Principal("a", Role.ANALYST), ("RM2", "B2"), ("RM2", "B2")),
    ],
)
def test_list_filters_are_narrowed_to_the_callers_scope(
    principal: Principal, asked: tuple[str | None, str | None], scoped: tuple[str | None, str | None] | None
) -> None:
    assert scope_filters(principal, *asked) == scoped
