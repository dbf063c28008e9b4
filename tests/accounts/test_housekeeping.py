"""Housekeeping removes what can no longer be used, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import uuid
from types import SimpleNamespace

import asyncpg
import pytest

from db import migrate
from db.pool import Pool
from server.accounts.background import run_housekeeping
from tests.conftest import StartServer
from tests.support import condition, eventually, make_user


def _hash() -> bytes:
    return hashlib.sha256(secrets.token_bytes(16)).digest()


async def _expired_session(db: asyncpg.Connection, user_id: uuid.UUID) -> uuid.UUID:
    """A session of ``user_id`` that expired two days ago; its id."""
    found: uuid.UUID = await db.fetchval(
        "INSERT INTO sessions (user_id, token_hash, created_at, expires_at)"
        " VALUES ($1, $2, now() - interval '9 days', now() - interval '2 days') RETURNING id",
        user_id,
        _hash(),
    )
    return found


async def test_expired_rows_are_removed_at_start_up(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    user = await make_user(db)
    expired_session = await _expired_session(db, user.id)
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


async def test_a_failed_run_is_tried_again_soon_not_an_hour_later(
    fresh_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    await migrate.forwards(fresh_database)
    db = await asyncpg.connect(fresh_database)
    raw = await asyncpg.create_pool(fresh_database, min_size=1, max_size=2)
    services = SimpleNamespace(pool=Pool(raw, acquire_timeout=5))
    task: asyncio.Task[None] | None = None
    try:
        user = await make_user(db)
        expired = await _expired_session(db, user.id)
        # The sessions table out of reach: every run fails, as during an outage.
        await db.execute("ALTER TABLE sessions RENAME TO sessions_away")
        task = asyncio.create_task(run_housekeeping(services, every=3600, retry=0.05))
        with caplog.at_level(logging.ERROR, logger="blendtune.accounts"):
            await eventually(
                condition(lambda: "accounts housekeeping failed" in caplog.text), what="a failure"
            )
        # Back at once (the backoff has doubled only a few times from 0.05 s): the next try
        # removes the expired session, long before the hourly run.
        await db.execute("ALTER TABLE sessions_away RENAME TO sessions")
        await eventually(
            lambda: db.fetchval("SELECT count(*) = 0 FROM sessions WHERE id = $1", expired),
            what="the retried housekeeping",
        )
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await raw.close()
        await db.close()
