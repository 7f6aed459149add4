"""Bearer tokens: who is asking, in which role, and for which book or branch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runtime.errors import Forbidden, Unauthorized

ALGORITHM = "HS256"


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


def verify_token(token: str, secret: str) -> Principal:
    """Decode and check a token; any defect is a 401, never a 500."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "role", "exp"]}, leeway=30
        )
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


_bearer = HTTPBearer(auto_error=False, description="A JWT signed with C360_JWT_SECRET (HS256).")


async def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    secret: str = request.app.state.runtime.extras["jwt_secret"]
    return verify_token(credentials.credentials, secret)


PrincipalDep = Annotated[Principal, Depends(authenticated)]


def require(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role.value} role may not use this route")
