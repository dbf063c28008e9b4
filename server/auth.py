"""Authentication: opaque session tokens, stored only as SHA-256 hashes.

One function, ``authenticate``, serves REST (Bearer header or cookie) and WebSockets (first
message or cookie). Sessions slide: each use within the TTL pushes the expiry forward (at
most once a minute, so a busy client does not write on every request).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Request, get
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from db.rows import row_as
from server.problems import PROBLEM_JSON, Problem, ProblemDetail
from server.services import Services

SESSION_COOKIE = "bt_session"
ROLES = ("user", "artist", "admin", "moderator")


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the user behind a valid session."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: frozenset[str]
    email_verified: bool

    def has_role(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_from_headers(headers: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return cookies.get(SESSION_COOKIE) or None


def client_address(request: Request[Any, Any, Any]) -> str:
    """The caller's address, for rate limits. uvicorn replaces the peer address with
    X-Forwarded-For only when the peer is a trusted proxy (FORWARDED_ALLOW_IPS, default
    loopback), so clients cannot pick it."""
    return request.client.host if request.client else "unknown"


_LOOKUP = """
WITH found AS (
    SELECT s.id, s.user_id, s.last_activity
    FROM sessions s
    WHERE s.token_hash = $1 AND s.expires_at > now()
), slid AS (
    UPDATE sessions s
    SET last_activity = now(), expires_at = now() + $2::interval
    FROM found
    WHERE s.id = found.id AND found.last_activity < now() - interval '60 seconds'
)
SELECT found.id AS session_id, u.id AS user_id, u.email_verified,
       coalesce(array_agg(r.role::text) FILTER (WHERE r.role IS NOT NULL), '{}') AS roles
FROM found
JOIN users u ON u.id = found.user_id
LEFT JOIN user_roles r ON r.user_id = u.id
GROUP BY found.id, u.id
"""


async def authenticate(services: Services, token: str | None) -> Principal | None:
    """The principal behind ``token``, or None if it is missing, unknown or expired."""
    if not token or len(token) > 256:
        return None
    ttl = timedelta(hours=services.settings.session_ttl_hours)
    row = await services.pool.fetchrow(_LOOKUP, hash_token(token), ttl)
    if row is None:
        return None
    # Every account has the implicit role "user" (never stored).
    return row_as(Principal, row, extra={"roles": [*row["roles"], "user"]})


def _unauthenticated() -> Problem:
    return Problem(
        401,
        "unauthenticated",
        "A valid session is required.",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    # A role guard and the ``principal`` dependency both need the caller: look it up once per
    # request and keep it in the request's state.
    state = connection.state
    if "principal" not in state:
        services: Services = connection.app.state.services
        token = token_from_headers(connection.headers, connection.cookies)
        state["principal"] = await authenticate(services, token)
    principal: Principal | None = state["principal"]
    return principal


async def current_principal(request: Request[Any, Any, Any], services: Services) -> Principal:
    """Litestar dependency: the caller, or 401."""
    principal = await _principal_of(request)
    if principal is None:
        raise _unauthenticated()
    return principal


def require_role(*roles: str) -> Any:
    """A guard for role-only endpoints; use together with the ``principal`` dependency."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await _principal_of(connection)
        if principal is None:
            raise _unauthenticated()
        if not principal.has_role(*roles):
            raise Problem(403, "forbidden", f"This needs one of the roles: {', '.join(roles)}.")

    return guard


class WhoAmI(msgspec.Struct):
    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: list[str]
    email_verified: bool


@get(
    "/auth/whoami",
    tags=["accounts"],
    sync_to_thread=False,
    responses={
        401: ResponseSpec(
            data_container=ProblemDetail,
            description="`unauthenticated`: no valid session token (Bearer header or cookie).",
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
    },
)
def whoami(principal: Principal) -> WhoAmI:
    """The user and session behind the presented token (401 without one)."""
    return WhoAmI(
        user_id=principal.user_id,
        session_id=principal.session_id,
        roles=sorted(principal.roles),
        email_verified=principal.email_verified,
    )
