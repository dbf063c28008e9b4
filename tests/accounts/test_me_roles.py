"""GET/PATCH/DELETE /me and role management."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import asyncpg
import httpx
import pytest

from tests.accounts.helpers import (
    PASSWORD,
    bearer,
    client_for,
    counts,
    login,
    new_email,
    register,
)
from tests.support import Backends, ServerProcess, assert_problem, make_user


async def test_profile_read_and_patch(server: ServerProcess, db: asyncpg.Connection) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        token = await login(client, account.email)
        client.cookies.clear()
        me = (await client.get("/me", headers=bearer(token))).json()
        assert me["profile"] == {
            "display_name": None,
            "avatar_url": None,
            "bio": None,
            "country": None,
            "timezone": None,
            "language": "en",
        }
        patch = {
            "display_name": "Ada Lovelace",
            "avatar_url": "https://cdn.example.com/a.png",
            "bio": "Counts notes.\nWrites engines.",
            "country": "GB",
            "timezone": "Europe/London",
            "language": "en-GB",
        }
        response = await client.patch("/me", json=patch, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["profile"] == patch
        # Only present fields change; null clears.
        response = await client.patch(
            "/me", json={"bio": None, "country": "FR"}, headers=bearer(token)
        )
        assert response.json()["profile"] == {**patch, "bio": None, "country": "FR"}
        row = await db.fetchrow("SELECT * FROM profiles WHERE user_id = $1", account.user_id)
        assert row is not None
        assert (
            row["bio"] is None and row["country"] == "FR" and row["display_name"] == "Ada Lovelace"
        )


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": ""},
        {"display_name": "   "},
        {"display_name": "x" * 101},
        {"display_name": "bell\x07"},
        {"avatar_url": "javascript:alert(1)"},
        {"avatar_url": "ftp://example.com/a.png"},
        {"avatar_url": "https://example.com/" + "a" * 500},
        {"bio": "b" * 2001},
        {"country": "gb"},
        {"country": "GBR"},
        {"timezone": "Mars/Olympus"},
        {"timezone": ""},
        {"language": "english"},
        {"language": None},
        {"display_name": 5},
        {"unknown_field": "x"},
        [],
    ],
)
async def test_profile_patch_rejects_bad_values(
    server: ServerProcess, db: asyncpg.Connection, body: object
) -> None:
    user = await make_user(db)
    before = await db.fetchrow("SELECT * FROM profiles WHERE user_id = $1", user.id)
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.patch("/me", json=body, headers=user.headers)
    assert_problem(response, 400)
    assert response.json()["code"] in ("invalid_request", "invalid_timezone")
    assert await db.fetchrow("SELECT * FROM profiles WHERE user_id = $1", user.id) == before


async def test_delete_me_needs_password_and_removes_everything_owned(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        token = await login(client, account.email)
        await login(client, account.email)
        client.cookies.clear()
        # Something owned in another domain, and a role granted by this user to someone else.
        playlist = await db.fetchval(
            "INSERT INTO playlists (user_id, name) VALUES ($1, 'mine') RETURNING id",
            account.user_id,
        )
        other = await make_user(db)
        await db.execute(
            "INSERT INTO user_roles (user_id, role, granted_by) VALUES ($1, 'artist', $2)",
            other.id,
            account.user_id,
        )

        before = await counts(db)
        wrong = await client.request(
            "DELETE", "/me", json={"password": "not my password"}, headers=bearer(token)
        )
        assert_problem(wrong, 403, "wrong_password")
        missing = await client.request("DELETE", "/me", json={}, headers=bearer(token))
        assert_problem(missing, 400, "invalid_request")
        no_body = await client.delete("/me", headers=bearer(token))
        assert_problem(no_body, 400)
        anonymous = await client.request("DELETE", "/me", json={"password": PASSWORD})
        assert_problem(anonymous, 401, "unauthenticated")
        assert await counts(db) == before

        gone = await client.request(
            "DELETE", "/me", json={"password": PASSWORD}, headers=bearer(token)
        )
        assert gone.status_code == 204, gone.text
        for table in ("users", "profiles", "sessions", "email_verifications", "email_outbox"):
            column = "id" if table == "users" else "user_id"
            assert (
                await db.fetchval(
                    f"SELECT count(*) FROM {table} WHERE {column} = $1", account.user_id
                )
                == 0
            ), table
        assert await db.fetchval("SELECT count(*) FROM playlists WHERE id = $1", playlist) == 0
        # The other user keeps the role; who granted it is forgotten.
        assert (
            await db.fetchval(
                "SELECT granted_by FROM user_roles WHERE user_id = $1 AND role = 'artist'",
                other.id,
            )
            is None
        )
        assert (await client.get("/me", headers=bearer(token))).status_code == 401
        again = await client.post(
            "/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert_problem(again, 401, "invalid_credentials")


async def test_admins_grant_and_revoke_roles(server: ServerProcess, db: asyncpg.Connection) -> None:
    admin = await make_user(db, roles=("admin",))
    target = await make_user(db)
    async with httpx.AsyncClient(base_url=server.url) as client:
        granted = await client.put(f"/users/{target.id}/roles/artist", headers=admin.headers)
        assert granted.status_code == 200, granted.text
        assert granted.json() == {"user_id": str(target.id), "roles": ["artist", "user"]}
        assert (
            await db.fetchval(
                "SELECT granted_by FROM user_roles WHERE user_id = $1 AND role = 'artist'",
                target.id,
            )
            == admin.id
        )
        # Idempotent.
        again = await client.put(f"/users/{target.id}/roles/artist", headers=admin.headers)
        assert again.json()["roles"] == ["artist", "user"]
        whoami = await client.get("/auth/whoami", headers=target.headers)
        assert whoami.json()["roles"] == ["artist", "user"]
        listed = await client.get(f"/users/{target.id}/roles", headers=admin.headers)
        assert listed.json()["roles"] == ["artist", "user"]

        revoked = await client.delete(f"/users/{target.id}/roles/artist", headers=admin.headers)
        assert revoked.status_code == 200
        assert revoked.json()["roles"] == ["user"]
        assert (await client.get("/auth/whoami", headers=target.headers)).json()["roles"] == [
            "user"
        ]


async def test_role_calls_refused(server: ServerProcess, db: asyncpg.Connection) -> None:
    admin = await make_user(db, roles=("admin",))
    moderator = await make_user(db, roles=("moderator",))
    target = await make_user(db)
    before = await counts(db)
    async with httpx.AsyncClient(base_url=server.url) as client:
        url = f"/users/{target.id}/roles/artist"
        assert_problem(await client.put(url), 401, "unauthenticated")
        assert_problem(await client.put(url, headers={"Authorization": "Bearer forged"}), 401)
        assert_problem(await client.put(url, headers=moderator.headers), 403, "forbidden")
        assert_problem(await client.put(url, headers=target.headers), 403, "forbidden")
        assert_problem(await client.delete(url, headers=target.headers), 403, "forbidden")
        assert_problem(await client.get(f"/users/{target.id}/roles", headers=target.headers), 403)
        bad_role = await client.put(f"/users/{target.id}/roles/superuser", headers=admin.headers)
        assert_problem(bad_role, 400, "invalid_request")
        implicit = await client.delete(f"/users/{target.id}/roles/user", headers=admin.headers)
        assert_problem(implicit, 400, "role_implicit")
        nobody = await client.put(f"/users/{uuid.uuid4()}/roles/artist", headers=admin.headers)
        assert_problem(nobody, 404, "user_not_found")
        bad_id = await client.put("/users/not-a-uuid/roles/artist", headers=admin.headers)
        assert_problem(bad_id, 404, "not_found")  # a malformed id matches no route
    assert await counts(db) == before


async def test_last_admin_keeps_the_role(server: ServerProcess, db: asyncpg.Connection) -> None:
    # Other tests leave admins behind: set them aside so this one is the only admin.
    others = await db.fetch("DELETE FROM user_roles WHERE role = 'admin' RETURNING user_id")
    try:
        await _last_admin(server, db)
    finally:
        await db.executemany(
            "INSERT INTO user_roles (user_id, role) VALUES ($1, 'admin') ON CONFLICT DO NOTHING",
            [(r["user_id"],) for r in others],
        )


async def _last_admin(server: ServerProcess, db: asyncpg.Connection) -> None:
    admin = await make_user(db, roles=("admin",))
    async with httpx.AsyncClient(base_url=server.url) as client:
        alone = await client.delete(f"/users/{admin.id}/roles/admin", headers=admin.headers)
        assert_problem(alone, 409, "last_admin")
        second = await make_user(db)
        await client.put(f"/users/{second.id}/roles/admin", headers=admin.headers)
        demoted = await client.delete(f"/users/{admin.id}/roles/admin", headers=second.headers)
        assert demoted.status_code == 200 and demoted.json()["roles"] == ["user"]
        assert_problem(
            await client.put(f"/users/{admin.id}/roles/admin", headers=admin.headers), 403
        )


async def test_cli_grants_the_first_admin(
    server: ServerProcess, db: asyncpg.Connection, backends: Backends
) -> None:
    async with client_for(server.url) as client:
        account = await register(client)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")},
            "BLENDTUNE_DATABASE_URL": backends.database_url,
            "BLENDTUNE_REDIS_URL": backends.redis_url,
        }

        def blendtune(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "server", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        done = await asyncio.to_thread(blendtune, "grant-role", account.email.upper(), "admin")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("admin, user")
        token = await login(client, account.email)
        client.cookies.clear()
        listed = await client.get(f"/users/{account.user_id}/roles", headers=bearer(token))
        assert listed.status_code == 200 and listed.json()["roles"] == ["admin", "user"]

        undone = await asyncio.to_thread(
            blendtune, "grant-role", account.email, "admin", "--revoke"
        )
        assert undone.returncode == 0, undone.stderr
        assert (await client.get("/auth/whoami", headers=bearer(token))).json()["roles"] == ["user"]
        missing = await asyncio.to_thread(blendtune, "grant-role", new_email(), "admin")
        assert missing.returncode == 1 and "no account" in missing.stderr


async def test_every_reference_to_users_lets_an_account_go(db: asyncpg.Connection) -> None:
    # DELETE /me relies on this: a foreign key to users that neither cascades nor nulls
    # would make account deletion fail once that table has a row for the user.
    rows = await db.fetch(
        "SELECT c.conrelid::regclass::text AS table_name, c.conname, c.confdeltype::text AS rule"
        " FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = 'users'::regclass"
    )
    assert rows
    blocking = [(r["table_name"], r["conname"]) for r in rows if r["rule"] not in ("c", "n")]
    assert blocking == []
