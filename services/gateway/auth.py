"""Bearer tokens: who is asking, in which role, and for which book or branch; and how often."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter

from runtime.errors import Forbidden, TooManyRequests, Unauthorized

ALGORITHM = "HS256"
ALGORITHMS = ("HS256", "RS256")

ACCESS_REFUSED = Counter(
    "c360_access_refused_total",
    "Requests refused: no or a bad token (401), a role the route does not allow (403), or a customer or "
    "task outside the caller's scope (answered 404, as if it did not exist).",
    ["reason"],
)


class Role(StrEnum):
    RM = "rm"
    SUPERVISOR = "supervisor"
    ANALYST = "analyst"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    rm_id: str | None = None
    branch_id: str | None = None


def issue_token(
    secret: str,
    *,
    subject: str,
    role: Role,
    now: datetime,
    ttl: timedelta,
    rm_id: str | None = None,
    branch_id: str | None = None,
) -> str:
    claims: dict[str, object] = {"sub": subject, "role": role.value, "iat": now, "nbf": now, "exp": now + ttl}
    if rm_id:
        claims["rm_id"] = rm_id
    if branch_id:
        claims["branch_id"] = branch_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, key: str, algorithm: str = ALGORITHM) -> Principal:
    """Decode and check a token with `key` (the HS256 secret or the RS256 public key) and exactly
    `algorithm`; any defect is a 401, never a 500."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported algorithm {algorithm}")
    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], options={"require": ["sub", "role", "exp"]}, leeway=30)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"the token is not valid: {exc}") from exc
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise Unauthorized(f"unknown role {claims['role']!r}") from exc
    principal = Principal(
        subject=str(claims["sub"]), role=role, rm_id=claims.get("rm_id"), branch_id=claims.get("branch_id")
    )
    if role is Role.RM and not principal.rm_id:
        raise Unauthorized("an rm token needs an rm_id claim")
    if role is Role.SUPERVISOR and not principal.branch_id:
        raise Unauthorized("a supervisor token needs a branch_id claim")
    return principal


@dataclass
class RateLimiter:
    """A token bucket per client: `per_minute` requests a minute, refilled evenly. In memory, so
    the limit holds per gateway replica."""

    per_minute: int
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # client -> (tokens, at)
    monotonic: Callable[[], float] = time.monotonic

    def check(self, client: str) -> None:
        now = self.monotonic()
        rate = self.per_minute / 60
        tokens, at = self.buckets.get(client, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * rate)
        if tokens < 1:
            self.buckets[client] = (tokens, now)
            raise TooManyRequests(
                f"more than {self.per_minute} requests a minute from this client", math.ceil((1 - tokens) / rate)
            )
        self.buckets[client] = (tokens - 1, now)
        if len(self.buckets) > 100_000:  # forget idle clients rather than grow for ever
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 60}


_bearer = HTTPBearer(
    auto_error=False, description="A JWT signed with C360_JWT_SECRET (HS256), or RS256 with a configured public key."
)


async def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    extras = request.app.state.runtime.extras
    limiter: RateLimiter = extras["rate_limiter"]
    if credentials is None or credentials.scheme.lower() != "bearer":
        ACCESS_REFUSED.labels("unauthenticated").inc()
        limiter.check(f"addr:{request.client.host if request.client else '-'}")
        raise Unauthorized("a bearer token is required")
    try:
        principal = verify_token(credentials.credentials, extras["jwt_key"], extras["jwt_algorithm"])
    except Unauthorized:
        ACCESS_REFUSED.labels("unauthenticated").inc()
        limiter.check(f"addr:{request.client.host if request.client else '-'}")
        raise
    limiter.check(f"sub:{principal.subject}")
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticated)]


def require(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        ACCESS_REFUSED.labels("forbidden").inc()
        raise Forbidden(f"the {principal.role.value} role may not use this route")


def admitting(*roles: Role) -> Any:
    """The caller, refused (403) unless their role is one of `roles`. As a dependency it runs before
    the request body is validated, so a role that may not use a route gets a 403, never a 422."""

    async def check(principal: PrincipalDep) -> Principal:
        require(principal, *roles)
        return principal

    return Depends(check)
