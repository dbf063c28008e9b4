"""The account life cycle end to end against the running server and its database."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg
import httpx

from tests.accounts.helpers import (
    PASSWORD,
    bearer,
    client_for,
    counts,
    link_token,
    login,
    new_email,
    new_username,
    register,
    verification_link,
    wait_for_email,
)
from tests.conftest import StartServer
from tests.support import ServerProcess, assert_problem, eventually


async def test_register_verify_login_use_logout(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        email = new_email().replace("acct", "Mixed.Case")
        username = new_username()
        response = await client.post(
            "/auth/register", json={"email": email, "password": PASSWORD, "username": username}
        )
        assert response.status_code == 201, response.text
        account = response.json()
        assert account["email"] == email and account["username"] == username
        assert account["email_verified"] is False
        user_id = uuid.UUID(account["user_id"])

        row = await db.fetchrow(
            "SELECT password_hash, email_verified FROM users WHERE id = $1", user_id
        )
        assert row is not None
        assert (
            row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]
        )
        assert not row["email_verified"]
        assert await db.fetchval("SELECT count(*) FROM profiles WHERE user_id = $1", user_id) == 1

        # The verification link comes from the outbox; only the token's hash is stored.
        mail = await wait_for_email(db, email, "Confirm")
        assert mail["user_id"] == user_id
        link = verification_link(mail["body"])
        token = link_token(link)
        stored = await db.fetchrow(
            "SELECT token_hash, expires_at - created_at AS ttl FROM email_verifications"
            " WHERE user_id = $1",
            user_id,
        )
        assert stored is not None
        assert stored["token_hash"] == hashlib.sha256(token.encode()).digest()
        assert stored["ttl"].total_seconds() == 24 * 3600

        # Not yet verified: whoami says so after login.
        token_before = await login(client, email.upper())
        who = await client.get("/auth/whoami", headers=bearer(token_before))
        assert who.json()["email_verified"] is False

        # The emailed link opens the web client's page, which confirms the token through the
        # API; API clients POST it to /auth/verify. A GET never spends it (a GET never writes).
        assert link.startswith(f"{server.url}/verify?token=")
        refused = await client.get("/auth/verify", params={"token": token})
        assert refused.status_code == 405, refused.text
        verified = await client.post("/auth/verify", json={"token": token})
        assert verified.status_code == 200, verified.text
        assert verified.json() == {"user_id": str(user_id), "email_verified": True}
        assert await db.fetchval("SELECT email_verified FROM users WHERE id = $1", user_id)
        # Single use.
        again = await client.post("/auth/verify", json={"token": token})
        assert_problem(again, 400, "token_used")

        # Login: token in the body, HttpOnly SameSite=Lax cookie, not Secure over http.
        client.cookies.clear()
        response = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        session = response.json()
        session_token = session["token"]
        assert len(session_token) == 43  # 32 random bytes, URL-safe base64
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"bt_session={session_token}")
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=lax" in lowered and "secure" not in lowered
        assert "path=/" in lowered
        stored_hash = await db.fetchval(
            "SELECT token_hash FROM sessions WHERE id = $1", uuid.UUID(session["session_id"])
        )
        assert stored_hash == hashlib.sha256(session_token.encode()).digest()

        # The token works as Bearer and as the cookie (the client jar holds it now).
        async with httpx.AsyncClient(base_url=server.url) as bare:
            me = await bare.get("/me", headers=bearer(session_token))
            assert me.status_code == 200 and me.json()["email"] == email
            assert me.json()["email_verified"] is True and me.json()["roles"] == ["user"]
        async with httpx.AsyncClient(
            base_url=server.url, cookies={"bt_session": session_token}
        ) as by_cookie:
            whoami = await by_cookie.get("/auth/whoami")
            assert whoami.status_code == 200
            assert whoami.json()["session_id"] == session["session_id"]

        # Logout ends that session only and clears the cookie.
        out = await client.post("/auth/logout", headers=bearer(session_token))
        assert out.status_code == 204
        assert 'bt_session=""' in out.headers["set-cookie"] or "max-age=0" in (
            out.headers["set-cookie"].lower()
        )
        async with httpx.AsyncClient(base_url=server.url) as bare:
            refused = await bare.get("/me", headers=bearer(session_token))
            assert_problem(refused, 401, "unauthenticated")
            assert (await bare.get("/me", headers=bearer(token_before))).status_code == 200


async def test_secure_cookie_when_public_url_is_https(start_server: StartServer) -> None:
    process = await start_server(env={"BLENDTUNE_PUBLIC_URL": "https://blendtune.example"})
    async with client_for(process.url) as client:
        account = await register(client)
        response = await client.post(
            "/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert response.status_code == 200
        assert "secure" in response.headers["set-cookie"].lower()


async def test_outbox_sender_marks_messages_sent(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    # No SMTP host is configured in tests: the sender logs the message and marks it sent.
    async with client_for(server.url) as client:
        account = await register(client)
    mail = await wait_for_email(db, account.email, "Confirm")

    async def sent() -> bool:
        status = await db.fetchval("SELECT status FROM email_outbox WHERE id = $1", mail["id"])
        return bool(status == "sent")

    await eventually(sent, within=15, what="the outbox message being sent")
    row = await db.fetchrow("SELECT attempts, sent_at FROM email_outbox WHERE id = $1", mail["id"])
    assert row is not None
    assert row["attempts"] == 1 and row["sent_at"] is not None
    # ... and the developer finds the link in the log.
    token = link_token(verification_link(mail["body"]))
    assert token in server.log_path.read_text(errors="replace")


async def test_expired_and_forged_verification_tokens(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        token = link_token(
            verification_link((await wait_for_email(db, account.email, "Confirm"))["body"])
        )
        await db.execute(
            "UPDATE email_verifications SET created_at = now() - interval '25 hours',"
            " expires_at = now() - interval '1 hour' WHERE user_id = $1",
            account.user_id,
        )
        before = await counts(db)
        assert_problem(
            await client.post("/auth/verify", json={"token": token}), 400, "token_expired"
        )
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        assert_problem(
            await client.post("/auth/verify", json={"token": forged}), 400, "invalid_token"
        )
        assert_problem(
            await client.post("/auth/verify", json={"token": forged}), 400, "invalid_token"
        )
        assert await counts(db) == before
        assert not await db.fetchval(
            "SELECT email_verified FROM users WHERE id = $1", account.user_id
        )
        assert (
            await db.fetchval(
                "SELECT used_at FROM email_verifications WHERE user_id = $1", account.user_id
            )
            is None
        )

        # A signed-in user asks for a new link; it works.
        session = await login(client, account.email)
        resent = await client.post("/auth/verify/resend", headers=bearer(session))
        assert resent.status_code == 202
        rows = await db.fetch(
            "SELECT body FROM email_outbox WHERE user_id = $1 ORDER BY created_at", account.user_id
        )
        assert len(rows) == 2
        fresh = link_token(verification_link(rows[-1]["body"]))
        assert (await client.post("/auth/verify", json={"token": fresh})).status_code == 200
        again = await client.post("/auth/verify/resend", headers=bearer(session))
        assert_problem(again, 409, "already_verified")


async def test_secure_cookie_behind_a_tls_proxy(server: ServerProcess) -> None:
    # The test client is a trusted proxy (loopback) saying the original request was https.
    async with client_for(server.url) as client:
        account = await register(client)
        response = await client.post(
            "/auth/login",
            json={"email": account.email, "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert response.status_code == 200
        assert "secure" in response.headers["set-cookie"].lower()


async def test_sessions_slide_on_use(server: ServerProcess, db: asyncpg.Connection) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        token = await login(client, account.email)
    await db.execute(
        "UPDATE sessions SET last_activity = now() - interval '2 days',"
        " expires_at = now() + interval '1 hour' WHERE user_id = $1",
        account.user_id,
    )
    async with httpx.AsyncClient(base_url=server.url) as bare:
        assert (await bare.get("/me", headers=bearer(token))).status_code == 200
    left = await db.fetchval(
        "SELECT expires_at - now() FROM sessions WHERE user_id = $1", account.user_id
    )
    assert left.total_seconds() > 6.9 * 24 * 3600
