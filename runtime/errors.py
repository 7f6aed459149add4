"""One error base that knows its HTTP status and problem type, rendered as RFC 9457."""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime.transient import is_transient

PROBLEM_BASE = "https://c360.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document, served as `application/problem+json`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A stable URI naming the kind of problem.", examples=[PROBLEM_BASE + "not-found"])
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status.")
    detail: str = Field(description="What went wrong this time, for a human.")
    instance: str = Field(description="The path of the request.")


class ProblemError(Exception):
    """An expected failure with a stable problem `type` and an HTTP status."""

    status: int = 500
    type_slug: str = "internal"
    title: str = "Internal error"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.response_headers = dict(self.headers)


class NotFound(ProblemError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class Unprocessable(ProblemError):
    status = 422
    type_slug = "unprocessable"
    title = "Unprocessable request"


class Unauthorized(ProblemError):
    status = 401
    type_slug = "unauthorized"
    title = "Authentication required"


class Forbidden(ProblemError):
    status = 403
    type_slug = "forbidden"
    title = "Forbidden"


class ServiceUnavailable(ProblemError):
    status = 503
    type_slug = "service-unavailable"
    title = "Service unavailable"


class TooManyRequests(ProblemError):
    status = 429
    type_slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.response_headers["Retry-After"] = str(retry_after_s)


class Relayed(ProblemError):
    """A problem a backing service answered, passed on to the caller as it came."""

    def __init__(self, status: int, type_slug: str, title: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.status, self.type_slug, self.title = status, type_slug, title


def problem_response(
    status: int,
    type_slug: str,
    title: str,
    detail: str,
    instance: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + type_slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extensions,
    }
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers or None)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as `application/problem+json`."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            exc.status,
            exc.type_slug,
            exc.title,
            exc.detail,
            request.url.path,
            headers=exc.response_headers,
            **exc.extensions,
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"location": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]
        return problem_response(
            422,
            "validation",
            "Invalid request",
            "The request failed validation.",
            request.url.path,
            errors=errors,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, f"http-{exc.status_code}"
        )
        return problem_response(exc.status_code, slug, str(exc.detail), str(exc.detail), request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):  # the database or the broker away: the caller should retry, not report a bug
            return problem_response(
                503,
                ServiceUnavailable.type_slug,
                ServiceUnavailable.title,
                "A dependency of this service (the database or the broker) is unavailable; retry shortly.",
                request.url.path,
                headers={"Retry-After": "1"},
            )
        return problem_response(500, "internal", "Internal error", "An unexpected error occurred.", request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
