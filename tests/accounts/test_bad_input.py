"""Bad input on every accounts endpoint: its documented problem, and nothing written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.accounts.helpers import PASSWORD, client_for, counts, new_email
from tests.support import ServerProcess, assert_problem, make_user

GOOD_TOKEN_SHAPE = "A" * 43


@dataclass(frozen=True)
class Refused:
    """A bad body and its documented answer; a malformed body's is ``400 invalid_request``."""

    body: Any  # sent as JSON; None sends no body, "{" sends broken JSON
    status: int = 400
    code: str = "invalid_request"


def weak(body: dict[str, Any]) -> Refused:
    """Well formed, but the password breaks the policy."""
    return Refused(body, 400, "weak_password")


def forged(body: dict[str, Any]) -> Refused:
    """Well formed, but no such token was ever issued."""
    return Refused(body, 400, "invalid_token")


# Bodies every JSON endpoint must refuse with 400 invalid_request.
GENERIC_BAD: list[Any] = [
    None,  # no body at all
    "{",  # not JSON
    [],
    "just a string",
    42,
    {},
]

BODY_ENDPOINTS: dict[tuple[str, str], list[Any]] = {
    ("POST", "/auth/register"): [
        {"email": new_email(), "password": PASSWORD},
        {"email": new_email(), "username": "someone_new"},
        {"password": PASSWORD, "username": "someone_new"},
        {"email": "not-an-email", "password": PASSWORD, "username": "someone_new"},
        {"email": "a b@example.com", "password": PASSWORD, "username": "someone_new"},
        {"email": "x" * 250 + "@example.com", "password": PASSWORD, "username": "someone_new"},
        {"email": new_email(), "password": "short", "username": "someone_new"},
        {"email": new_email(), "password": "p" * 257, "username": "someone_new"},
        {"email": new_email(), "password": 1234567890123, "username": "someone_new"},
        {"email": new_email(), "password": PASSWORD, "username": "no spaces allowed"},
        {"email": new_email(), "password": PASSWORD, "username": "ab"},
        {"email": new_email(), "password": PASSWORD, "username": ["list"]},
        {"email": new_email(), "password": PASSWORD, "username": "someone_new", "admin": True},
        # Weak passwords (policy, not shape).
        weak({"email": new_email(), "password": "aaaaaaaaaaaa", "username": "someone_new"}),
        weak({"email": new_email(), "password": "qwertyuiop", "username": "someone_new"}),
        weak({"email": new_email(), "password": "my someone_new pw", "username": "someone_new"}),
    ],
    ("POST", "/auth/verify"): [
        {"token": ""},
        {"token": "short"},
        {"token": "has spaces in it, which tokens never do"},
        {"token": 12345678901234567890},
        {"token": "A" * 129},
        forged({"token": GOOD_TOKEN_SHAPE}),
        {"token": GOOD_TOKEN_SHAPE, "extra": 1},
    ],
    ("POST", "/auth/login"): [
        {"email": new_email()},
        {"password": PASSWORD},
        {"email": new_email(), "password": ""},
        {"email": new_email(), "password": None},
        {"email": 7, "password": PASSWORD},
        {"email": new_email(), "password": "p" * 257},
        {"email": new_email(), "password": PASSWORD, "remember": True},
    ],
    ("POST", "/auth/password-reset"): [
        {"email": "nope"},
        {"email": None},
        {"emails": [new_email()]},
    ],
    ("POST", "/auth/password-reset/confirm"): [
        {"token": GOOD_TOKEN_SHAPE},
        {"password": "a fine new password"},
        {"token": "bad token!", "password": "a fine new password"},
        {"token": GOOD_TOKEN_SHAPE, "password": "short"},
        forged({"token": GOOD_TOKEN_SHAPE, "password": "a fine new password"}),
    ],
    ("PATCH", "/me"): [
        {"display_name": None, "language": None},
        {"avatar_url": "not a url"},
        {"country": 33},
    ],
    ("PUT", "/me/password"): [
        {"current_password": PASSWORD},
        {"new_password": "a fine new password"},
        {"current_password": "", "new_password": "a fine new password"},
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD, "new_password": ["a fine new password"]},
        Refused(
            {"current_password": "not the password", "new_password": "a fine new password"},
            403,
            "wrong_password",
        ),
    ],
    ("DELETE", "/me"): [
        {"password": ""},
        {"password": 123},
        {"pass": PASSWORD},
    ],
}

AUTHENTICATED = {("PATCH", "/me"), ("PUT", "/me/password"), ("DELETE", "/me")}


def _cases() -> list[tuple[str, str, Refused | Any]]:
    cases = []
    for (method, path), bodies in BODY_ENDPOINTS.items():
        for body in [*GENERIC_BAD, *bodies]:
            if body == {} and method == "PATCH":
                continue  # an empty patch is a valid no-op
            cases.append((method, path, body))
    return cases


@pytest.mark.parametrize(("method", "path", "case"), _cases())
async def test_bad_bodies_are_refused_and_write_nothing(
    server: ServerProcess, db: asyncpg.Connection, method: str, path: str, case: Refused | Any
) -> None:
    refused = case if isinstance(case, Refused) else Refused(case)
    body = refused.body
    headers: dict[str, str] = {}
    if (method, path) in AUTHENTICATED:
        headers = (await make_user(db)).headers
    before = await counts(db)
    async with client_for(server.url) as client:
        kwargs: dict[str, Any] = {"headers": headers}
        if isinstance(body, str) and body == "{":
            kwargs["content"] = b"{"
            headers["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        response = await client.request(method, path, **kwargs)
    assert_problem(response, refused.status, refused.code)
    assert await counts(db) == before


@pytest.mark.parametrize(("method", "path"), list(BODY_ENDPOINTS))
async def test_oversized_bodies_get_413(
    server: ServerProcess, db: asyncpg.Connection, method: str, path: str
) -> None:
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if (method, path) in AUTHENTICATED:
        headers.update((await make_user(db)).headers)
    before = await counts(db)
    # max_request_bytes defaults to 1 MiB: send 2 MiB of otherwise plausible JSON.
    body = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'@example.com", "password": "x"}'
    async with client_for(server.url) as client:
        response = await client.request(method, path, content=body, headers=headers)
    assert_problem(response, 413)
    assert await counts(db) == before


@pytest.mark.parametrize(
    "params",
    [{}, {"token": ""}, {"token": "short"}, {"token": "bad token!" * 3}, {"token": "A" * 200}],
)
async def test_bad_verify_links(
    server: ServerProcess, db: asyncpg.Connection, params: dict[str, str]
) -> None:
    before = await counts(db)
    async with client_for(server.url) as client:
        response = await client.post("/auth/verify", json=params)
    assert_problem(response, 400)
    assert await counts(db) == before


# A fixed id (never anyone's): pytest-xdist's workers must collect the same test ids.
NOBODY = uuid.UUID("00000000-0000-4000-8000-00000000b10c")

PROTECTED = [
    ("POST", "/auth/logout"),
    ("GET", "/auth/sessions"),
    ("DELETE", "/auth/sessions"),
    ("DELETE", f"/auth/sessions/{NOBODY}"),
    ("POST", "/auth/verify/resend"),
    ("GET", "/me"),
    ("PATCH", "/me"),
    ("PUT", "/me/password"),
    ("DELETE", "/me"),
    ("GET", f"/users/{NOBODY}/roles"),
    ("PUT", f"/users/{NOBODY}/roles/artist"),
    ("DELETE", f"/users/{NOBODY}/roles/artist"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("token", [None, "forged-token-value", "x" * 300])
async def test_protected_endpoints_refuse_missing_or_forged_tokens(
    server: ServerProcess, db: asyncpg.Connection, method: str, path: str, token: str | None
) -> None:
    before = await counts(db)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    json: dict[str, str] | None = None
    if path == "/me" and method == "DELETE":
        json = {"password": PASSWORD}
    elif path == "/me/password":
        json = {"current_password": PASSWORD, "new_password": "a fine new password"}
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.request(method, path, headers=headers, json=json)
        by_cookie = await client.request(
            method, path, headers={"Cookie": f"bt_session={token or 'nothing'}"}, json=json
        )
    assert_problem(response, 401, "unauthenticated")
    assert_problem(by_cookie, 401, "unauthenticated")
    assert await counts(db) == before
