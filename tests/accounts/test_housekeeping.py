"""Housekeeping removes what can no longer be used, and nothing else."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

from tests.conftest import StartServer
from tests.support import eventually, make_user


def _hash() -> bytes:
    return hashlib.sha256(secrets.token_bytes(16)).digest()


async def test_expired_rows_are_removed_at_start_up(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    user = await make_user(db)
    expired_session = await db.fetchval(
        "INSERT INTO sessions (user_id, token_hash, created_at, expires_at)"
        " VALUES ($1, $2, now() - interval '9 days', now() - interval '2 days') RETURNING id",
        user.id,
        _hash(),
    )
    old_verification = await db.fetchval(
        "INSERT INTO email_verifications (user_id, token_hash, created_at, expires_at)"
        " VALUES ($1, $2, now() - interval '10 days', now() - interval '9 days') RETURNING id",
        user.id,
        _hash(),
    )
    recent_verification = await db.fetchval(
        "INSERT INTO email_verifications (user_id, token_hash, created_at, expires_at)"
        " VALUES ($1, $2, now() - interval '2 days', now() - interval '1 day') RETURNING id",
        user.id,
        _hash(),
    )
    old_reset = await db.fetchval(
        "INSERT INTO password_resets (user_id, token_hash, created_at, expires_at)"
        " VALUES ($1, $2, now() - interval '9 days', now() - interval '8 days') RETURNING id",
        user.id,
        _hash(),
    )
    old_mail = await db.fetchval(
        "INSERT INTO email_outbox (user_id, to_address, subject, body, status, sent_at)"
        " VALUES ($1, $2, 's', 'b', 'sent', now() - interval '31 days') RETURNING id",
        user.id,
        user.email,
    )
    await start_server()
    await eventually(
        lambda: db.fetchval("SELECT count(*) = 0 FROM email_outbox WHERE id = $1", old_mail),
        within=20,
        what="housekeeping",
    )
    assert not await db.fetchval("SELECT count(*) FROM sessions WHERE id = $1", expired_session)
    assert not await db.fetchval(
        "SELECT count(*) FROM email_verifications WHERE id = $1", old_verification
    )
    assert not await db.fetchval("SELECT count(*) FROM password_resets WHERE id = $1", old_reset)
    # Still there: the live session, and a token expired recently enough to explain itself.
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1", user.id) == 1
    assert await db.fetchval(
        "SELECT count(*) FROM email_verifications WHERE id = $1", recent_verification
    )
