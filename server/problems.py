"""Problem details (RFC 9457) for every REST error.

All 4xx/5xx responses are ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and, for validation errors, ``errors``. Raise ``Problem`` (or one of Litestar's
HTTP exceptions) from handlers; the handlers below turn them into this shape.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
import redis.exceptions
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("blendtune.errors")


class ProblemDetail(msgspec.Struct, omit_defaults=True):
    """The body of every REST error."""

    type: str
    title: str
    status: int
    detail: str = ""
    # A stable, machine-readable code (e.g. "email_taken"), documented per endpoint.
    code: str = ""
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)


class Problem(HTTPException):
    """An HTTP error with a stable ``code``; ``detail`` is safe to show to the client."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail or HTTPStatus(status).phrase)
        self.code = code
        if headers:
            self.headers = headers


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    detail: str,
    *,
    code: str = "",
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ProblemDetail]:
    body = ProblemDetail(
        type=f"https://blendtune.dev/problems/{code}" if code else "about:blank",
        title=_title(status),
        status=status,
        detail=detail,
        code=code,
        errors=errors or [],
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def http_exception_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = getattr(exc, "code", "") or _default_code(exc.status_code)
    errors: list[dict[str, Any]] | None = None
    detail = exc.detail
    if isinstance(exc, ValidationException):
        code = "invalid_request"
        errors = _validation_errors(exc.extra)
        detail = "The request is not valid; see errors."
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, detail, code=code, errors=errors, headers=headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    known = _classify(exc)
    if known is not None:
        status, code, detail = known
        _log.warning(
            "%s on %s %s: %r", code, request.method, request.url.path, exc, extra={"code": code}
        )
        headers = {"Retry-After": "5"} if status == 503 else None
        return problem_response(status, detail, code=code, headers=headers)
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "An internal error occurred.", code="internal_error")


# A PostgreSQL or Redis outage is the service being unavailable, not a bug: 503, so clients
# retry, and /readyz says which one is down.
_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    TimeoutError,
)


def _classify(exc: Exception) -> tuple[int, str, str] | None:
    if isinstance(exc, _OUTAGES):
        return 503, "unavailable", "A backing service is unavailable; try again shortly."
    # Handlers validate before writing; a constraint the database still refuses means the
    # request conflicts with stored data, and nothing was written (the transaction rolled back).
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return 409, "constraint_violation", "The request conflicts with stored data."
    if isinstance(exc, asyncpg.DataError):
        return 422, "invalid_value", "A value in the request is out of range."
    return None


def _default_code(status: int) -> str:
    return {
        # One code for every malformed request, whichever layer noticed it.
        400: "invalid_request",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
        503: "unavailable",
    }.get(status, "error")


def _validation_errors(extra: Any) -> list[dict[str, Any]]:
    if isinstance(extra, list):
        return [e if isinstance(e, dict) else {"message": str(e)} for e in extra]
    if isinstance(extra, dict):
        return [extra]
    return []


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "Problem", "ProblemDetail"]
