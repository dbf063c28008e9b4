"""Helpers for the accounts tests: clients with their own address, outbox reading, row counts.

The server sees the client address uvicorn gives it; uvicorn takes it from X-Forwarded-For
when the peer is loopback (its default FORWARDED_ALLOW_IPS). Each test therefore speaks from
an address of its own, so the shared server's per-address rate limit never couples tests.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
import httpx

from tests.support import eventually, new_address

PASSWORD = "correct horse battery staple"

ACCOUNT_TABLES = (
    "users",
    "profiles",
    "user_roles",
    "sessions",
    "email_verifications",
    "password_resets",
    "email_outbox",
)


def client_for(base_url: str, address: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=30,
        headers={"X-Forwarded-For": address or new_address()},
    )


def new_email(tag: str = "acct") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def new_username() -> str:
    return f"u_{uuid.uuid4().hex[:16]}"


async def counts(
    db: asyncpg.Connection, tables: tuple[str, ...] = ACCOUNT_TABLES
) -> dict[str, int]:
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


async def wait_for_email(
    db: asyncpg.Connection, to: str, subject_contains: str, *, within: float = 10.0
) -> asyncpg.Record:
    """The newest outbox message to ``to`` whose subject contains the text (polls)."""
    row: asyncpg.Record = await eventually(
        lambda: db.fetchrow(
            "SELECT * FROM email_outbox WHERE lower(to_address) = lower($1)"
            " AND subject ILIKE '%' || $2 || '%' ORDER BY created_at DESC LIMIT 1",
            to,
            subject_contains,
        ),
        within=within,
        what=f"an email to {to} about {subject_contains!r}",
    )
    return row


def verification_link(body: str) -> str:
    match = re.search(r"https?://\S+/verify\?token=([A-Za-z0-9_-]+)", body)
    assert match, body
    return match.group(0)


def link_token(link: str) -> str:
    return link.rsplit("token=", 1)[1]


def reset_token(body: str) -> str:
    match = re.search(r"^([A-Za-z0-9_-]{43})$", body, re.MULTILINE)
    assert match, body
    return match.group(1)


@dataclass
class Registered:
    user_id: uuid.UUID
    email: str
    username: str
    password: str


async def register(
    client: httpx.AsyncClient, *, email: str | None = None, password: str = PASSWORD
) -> Registered:
    email = email or new_email()
    username = new_username()
    response = await client.post(
        "/auth/register", json={"email": email, "password": password, "username": username}
    )
    assert response.status_code == 201, response.text
    return Registered(uuid.UUID(response.json()["user_id"]), email, username, password)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def bearer(token: str) -> Mapping[str, str]:
    return {"Authorization": f"Bearer {token}"}
