"""Lockout, enumeration resistance and the race for one email address."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.accounts.helpers import (
    PASSWORD,
    client_for,
    counts,
    new_email,
    new_username,
    register,
    wait_for_email,
)
from tests.support import ServerProcess, assert_problem


async def test_lockout_starts_at_sixth_attempt_and_ends_after_window(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        wrong = {"email": account.email, "password": "not the password at all"}
        right = {"email": account.email, "password": PASSWORD}
        bodies = []
        for attempt in range(1, 6):
            response = await client.post("/auth/login", json=wrong)
            assert_problem(response, 401, "invalid_credentials")
            bodies.append(response.json())
            locked = await db.fetchval(
                "SELECT locked_until IS NOT NULL FROM users WHERE id = $1", account.user_id
            )
            assert locked == (attempt == 5)
        # The 6th attempt, with the right password, is refused while the lock holds, with
        # the same answer as a wrong password.
        response = await client.post("/auth/login", json=right)
        assert_problem(response, 401, "invalid_credentials")
        assert response.json() == bodies[0]
        assert (
            await db.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1", account.user_id)
            == 0
        )
        window = await db.fetchval(
            "SELECT locked_until - now() FROM users WHERE id = $1", account.user_id
        )
        assert 14 * 60 < window.total_seconds() <= 15 * 60
        # The owner is told by email.
        await wait_for_email(db, account.email, "locked")

        # Time passes: the lock ends and the right password works (and clears the counters).
        await db.execute(
            "UPDATE users SET locked_until = now() - interval '1 second' WHERE id = $1",
            account.user_id,
        )
        response = await client.post("/auth/login", json=right)
        assert response.status_code == 200, response.text
        row = await db.fetchrow(
            "SELECT failed_login_attempts, locked_until FROM users WHERE id = $1", account.user_id
        )
        assert row is not None
        assert row["failed_login_attempts"] == 0 and row["locked_until"] is None


async def test_failures_below_threshold_are_forgotten_on_success(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        for _ in range(4):
            response = await client.post(
                "/auth/login", json={"email": account.email, "password": "wrong password!!"}
            )
            assert response.status_code == 401
        assert (
            await db.fetchval(
                "SELECT failed_login_attempts FROM users WHERE id = $1", account.user_id
            )
            == 4
        )
        ok = await client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
        assert ok.status_code == 200
        for _ in range(4):
            await client.post(
                "/auth/login", json={"email": account.email, "password": "wrong password!!"}
            )
        # 4 + 4 failures with a success between: never 5 in a row, so no lock.
        assert (
            await db.fetchval("SELECT locked_until FROM users WHERE id = $1", account.user_id)
            is None
        )


async def test_failed_login_does_not_reveal_whether_the_email_exists(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        known = await client.post(
            "/auth/login", json={"email": account.email, "password": "wrong password!!"}
        )
        before = await counts(db)
        unknown = await client.post(
            "/auth/login", json={"email": new_email("nobody"), "password": "wrong password!!"}
        )
        assert known.status_code == unknown.status_code == 401
        assert known.json() == unknown.json()
        assert known.headers.get("content-type") == unknown.headers.get("content-type")
        assert await counts(db) == before


async def test_simultaneous_registrations_same_email_different_case(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    email = new_email("race")
    variants = [email, email.upper()]

    async def attempt(address_email: str) -> int:
        async with client_for(server.url) as client:
            response = await client.post(
                "/auth/register",
                json={"email": address_email, "password": PASSWORD, "username": new_username()},
            )
            if response.status_code == 409:
                assert_problem(response, 409, "email_taken")
            return response.status_code

    for _ in range(3):
        email = new_email("race")
        variants = [email, email.upper(), email.title()]
        statuses = await asyncio.gather(*(attempt(v) for v in variants))
        assert sorted(statuses) == [201, 409, 409]
        assert (
            await db.fetchval("SELECT count(*) FROM users WHERE lower(email) = lower($1)", email)
            == 1
        )
        # The losers wrote nothing: one profile, one verification, one email.
        user_id = await db.fetchval("SELECT id FROM users WHERE lower(email) = lower($1)", email)
        assert await db.fetchval("SELECT count(*) FROM profiles WHERE user_id = $1", user_id) == 1
        assert (
            await db.fetchval(
                "SELECT count(*) FROM email_outbox WHERE lower(to_address) = lower($1)", email
            )
            == 1
        )


async def test_username_taken_regardless_of_case(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        username = new_username()
        first = await client.post(
            "/auth/register",
            json={"email": new_email(), "password": PASSWORD, "username": username},
        )
        assert first.status_code == 201
        before = await counts(db)
        second = await client.post(
            "/auth/register",
            json={"email": new_email(), "password": PASSWORD, "username": username.upper()},
        )
        assert_problem(second, 409, "username_taken")
        assert await counts(db) == before


async def test_concurrent_failures_all_count_and_lock_once(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)

    async def fail() -> int:
        async with client_for(server.url) as client:
            response = await client.post(
                "/auth/login", json={"email": account.email, "password": "wrong password!!"}
            )
            return response.status_code

    statuses = await asyncio.gather(*(fail() for _ in range(8)))
    assert statuses == [401] * 8
    row = await db.fetchrow(
        "SELECT failed_login_attempts, locked_until > now() AS locked FROM users WHERE id = $1",
        account.user_id,
    )
    assert row is not None
    # Five failures locked the account (and restarted the count); the ones that landed while
    # it was locked neither counted nor extended the lock; its owner got one email.
    assert row["locked"] and row["failed_login_attempts"] == 0
    mails = await db.fetchval(
        "SELECT count(*) FROM email_outbox WHERE user_id = $1 AND subject ILIKE '%locked%'",
        account.user_id,
    )
    assert mails == 1
