"""Sessions (list, revoke) and password reset (revokes every session, single use, 1 h)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from tests.accounts.helpers import (
    PASSWORD,
    bearer,
    client_for,
    counts,
    login,
    new_email,
    register,
    reset_token,
    wait_for_email,
)
from tests.support import ServerProcess, assert_problem

NEW_PASSWORD = "a brand new passphrase"


async def _status(server: ServerProcess, token: str) -> int:
    async with httpx.AsyncClient(base_url=server.url) as bare:
        return (await bare.get("/auth/whoami", headers=bearer(token))).status_code


async def test_list_and_revoke_sessions(server: ServerProcess, db: asyncpg.Connection) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        tokens = [await login(client, account.email) for _ in range(3)]
        client.cookies.clear()
        listed = await client.get(
            "/auth/sessions", headers={**bearer(tokens[0]), "User-Agent": "test-agent/1"}
        )
        assert listed.status_code == 200
        sessions = listed.json()
        assert len(sessions) == 3
        assert sum(s["current"] for s in sessions) == 1
        current = next(s for s in sessions if s["current"])
        assert current["ip_address"] == client.headers["X-Forwarded-For"]
        others = [s["id"] for s in sessions if not s["current"]]

        # Another user can neither see nor revoke these sessions.
        other = await register(client)
        other_token = await login(client, other.email)
        client.cookies.clear()
        theirs = await client.delete(f"/auth/sessions/{others[0]}", headers=bearer(other_token))
        assert_problem(theirs, 404, "session_not_found")
        assert len((await client.get("/auth/sessions", headers=bearer(other_token))).json()) == 1

        revoked = await client.delete(f"/auth/sessions/{others[0]}", headers=bearer(tokens[0]))
        assert revoked.status_code == 204
        assert [await _status(server, t) for t in tokens].count(401) == 1
        missing = await client.delete(f"/auth/sessions/{uuid.uuid4()}", headers=bearer(tokens[0]))
        assert_problem(missing, 404, "session_not_found")
        bad_id = await client.delete("/auth/sessions/not-a-uuid", headers=bearer(tokens[0]))
        assert_problem(bad_id, 404, "not_found")  # a malformed id matches no route

        # Revoke all the others: only the current one survives.
        assert (await client.delete("/auth/sessions", headers=bearer(tokens[0]))).status_code == 204
        assert [await _status(server, t) for t in tokens] == [200, 401, 401]
        assert await _status(server, other_token) == 200


async def test_reset_revokes_every_session_and_is_single_use(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        tokens = [await login(client, account.email) for _ in range(2)]
        assert [await _status(server, t) for t in tokens] == [200, 200]

        asked = await client.post("/auth/password-reset", json={"email": account.email.upper()})
        assert asked.status_code == 202
        mail = await wait_for_email(db, account.email, "Reset")
        token = reset_token(mail["body"])
        ttl = await db.fetchval(
            "SELECT expires_at - created_at FROM password_resets WHERE user_id = $1",
            account.user_id,
        )
        assert ttl.total_seconds() == 3600

        # A weak password is refused and the token stays usable.
        weak = await client.post(
            "/auth/password-reset/confirm", json={"token": token, "password": "aaaaaaaaaaaa"}
        )
        assert_problem(weak, 400, "weak_password")
        assert [await _status(server, t) for t in tokens] == [200, 200]

        done = await client.post(
            "/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
        )
        assert done.status_code == 204, done.text
        assert [await _status(server, t) for t in tokens] == [401, 401]
        assert (
            await db.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1", account.user_id)
            == 0
        )

        # Reused token: refused, nothing changes.
        before = await counts(db)
        reused = await client.post(
            "/auth/password-reset/confirm", json={"token": token, "password": "yet another one!"}
        )
        assert_problem(reused, 400, "token_used")
        assert await counts(db) == before

        old = await client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
        assert_problem(old, 401, "invalid_credentials")
        assert await login(client, account.email, NEW_PASSWORD)


async def test_reset_request_answers_the_same_for_unknown_emails(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        known = await client.post("/auth/password-reset", json={"email": account.email})
        await wait_for_email(db, account.email, "Reset")
        before = await counts(db)
        nobody = new_email("nobody")
        unknown = await client.post("/auth/password-reset", json={"email": nobody})
        assert known.status_code == unknown.status_code == 202
        assert known.json() == unknown.json()
        # The lookup happens after the answer: give it time to (not) write anything.
        await login(client, account.email)
        after = await counts(db)
        assert after["password_resets"] == before["password_resets"]
        assert after["email_outbox"] == before["email_outbox"]
        assert (
            await db.fetchval("SELECT count(*) FROM email_outbox WHERE to_address = $1", nobody)
            == 0
        )


async def test_expired_and_forged_reset_tokens(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        session = await login(client, account.email)
        await client.post("/auth/password-reset", json={"email": account.email})
        token = reset_token((await wait_for_email(db, account.email, "Reset"))["body"])
        await db.execute(
            "UPDATE password_resets SET created_at = now() - interval '2 hours',"
            " expires_at = now() - interval '1 hour' WHERE user_id = $1",
            account.user_id,
        )
        before = await counts(db)
        password_hash = await db.fetchval(
            "SELECT password_hash FROM users WHERE id = $1", account.user_id
        )
        expired = await client.post(
            "/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
        )
        assert_problem(expired, 400, "token_expired")
        forged = await client.post(
            "/auth/password-reset/confirm",
            json={"token": "x" * 43, "password": NEW_PASSWORD},
        )
        assert_problem(forged, 400, "invalid_token")
        assert await counts(db) == before
        assert (
            await db.fetchval("SELECT password_hash FROM users WHERE id = $1", account.user_id)
            == password_hash
        )
        assert await _status(server, session) == 200


async def test_change_password_signs_out_other_sessions(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        tokens = [await login(client, account.email) for _ in range(2)]
        client.cookies.clear()
        before = await counts(db)
        wrong = await client.put(
            "/me/password",
            json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
            headers=bearer(tokens[0]),
        )
        assert_problem(wrong, 403, "wrong_password")
        weak = await client.put(
            "/me/password",
            json={"current_password": PASSWORD, "new_password": "1234567890"},
            headers=bearer(tokens[0]),
        )
        assert_problem(weak, 400, "weak_password")
        assert await counts(db) == before
        assert [await _status(server, t) for t in tokens] == [200, 200]

        changed = await client.put(
            "/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(tokens[0]),
        )
        assert changed.status_code == 204, changed.text
        assert [await _status(server, t) for t in tokens] == [200, 401]
        await wait_for_email(db, account.email, "password was changed")
        assert_problem(
            await client.post("/auth/login", json={"email": account.email, "password": PASSWORD}),
            401,
            "invalid_credentials",
        )
        assert await login(client, account.email, NEW_PASSWORD)


async def test_concurrent_confirmations_of_one_reset_token(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        await client.post("/auth/password-reset", json={"email": account.email})
        token = reset_token((await wait_for_email(db, account.email, "Reset"))["body"])

    async def confirm(password: str) -> httpx.Response:
        async with client_for(server.url) as client:
            return await client.post(
                "/auth/password-reset/confirm", json={"token": token, "password": password}
            )

    first, second = await asyncio.gather(
        confirm("first new passphrase"), confirm("second new passphrase")
    )
    assert sorted([first.status_code, second.status_code]) == [204, 400]
    loser = first if first.status_code == 400 else second
    assert_problem(loser, 400, "token_used")
    winner = "first new passphrase" if first.status_code == 204 else "second new passphrase"
    async with client_for(server.url) as client:
        assert await login(client, account.email, winner)
