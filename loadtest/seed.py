"""Seeding: load-test users, sessions and rooms written directly into the database.

Why not the REST API: registering thousands of users there is rate-limited per address
(BLENDTUNE_AUTH_RATE_LIMIT_PER_MINUTE) and costs an argon2id hash each, which is the
point of those limits. The seeder writes the same rows the accounts code would, with
an unusable password (the users can only use their seeded session), under an address no
real user can have (``@loadtest.invalid``), so ``--clean`` can find and delete them all.

Rooms are created for the load-test kind (``loadtest.kind``): a ``rooms`` row of kind
``loadtest``, which is all that kind needs to accept members.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

import msgspec

EMAIL_DOMAIN = "loadtest.invalid"
# Not an argon2 hash: no password verifies against it.
UNUSABLE_PASSWORD = "!loadtest-no-login"


class Seeded(msgspec.Struct, kw_only=True):
    kind: str
    rooms: list[str]
    tokens: list[str]  # one per member slot: room r's member m uses tokens[r*members + m]
    members: int


def write(seeded: Seeded, path: str) -> None:
    with open(path, "wb") as f:
        f.write(msgspec.json.encode(seeded))


def read(path: str) -> Seeded:
    with open(path, "rb") as f:
        return msgspec.json.decode(f.read(), type=Seeded)


async def seed(database_url: str, kind: str, rooms: int, members: int) -> Seeded:
    import asyncpg

    if kind != "loadtest":
        raise ValueError(f"the seeder creates loadtest rooms only, not {kind!r}")
    run = secrets.token_hex(4)
    users = rooms * members
    names = [f"loadtest-{run}-{i}" for i in range(users)]
    tokens = [secrets.token_urlsafe(32) for _ in range(users)]
    room_ids = [uuid.uuid4() for _ in range(rooms)]
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            ids = await conn.fetch(
                "INSERT INTO users (email, username, password_hash, email_verified,"
                " email_verified_at)"
                " SELECT n || '@' || $2, n, $3, true, now() FROM unnest($1::text[]) AS n"
                " RETURNING id, username",
                names,
                EMAIL_DOMAIN,
                UNUSABLE_PASSWORD,
            )
            by_name = {row["username"]: row["id"] for row in ids}
            user_ids = [by_name[n] for n in names]
            await conn.execute("INSERT INTO profiles (user_id) SELECT unnest($1::uuid[])", user_ids)
            await conn.execute(
                "INSERT INTO sessions (user_id, token_hash, expires_at)"
                " SELECT u, h, now() + interval '7 days'"
                " FROM unnest($1::uuid[], $2::bytea[]) AS t(u, h)",
                user_ids,
                [hashlib.sha256(t.encode()).digest() for t in tokens],
            )
            await conn.execute(
                "INSERT INTO rooms (id, kind) SELECT unnest($1::uuid[]), $2",
                room_ids,
                kind,
            )
    finally:
        await conn.close()
    return Seeded(kind=kind, rooms=[str(r) for r in room_ids], tokens=tokens, members=members)


async def clean(database_url: str) -> tuple[int, int]:
    """Delete every load-test user (sessions cascade) and every load-test room."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            users = await conn.fetchval(
                "WITH d AS (DELETE FROM users WHERE email LIKE '%@' || $1 RETURNING 1)"
                " SELECT count(*) FROM d",
                EMAIL_DOMAIN,
            )
            rooms = await conn.fetchval(
                "WITH d AS (DELETE FROM rooms WHERE kind = 'loadtest' RETURNING 1)"
                " SELECT count(*) FROM d"
            )
    finally:
        await conn.close()
    return int(users), int(rooms)


async def seed_with_settings(kind: str, rooms: int, members: int) -> Seeded:
    with _database() as url:
        return await seed(url, kind, rooms, members)


async def clean_with_settings() -> tuple[int, int]:
    with _database() as url:
        return await clean(url)


class _database:
    """The server's database: BLENDTUNE_DATABASE_URL, or the embedded one under data_dir.

    Only PostgreSQL is needed; a placeholder Redis URL keeps the embedded helper from
    starting a Redis of its own.
    """

    def __enter__(self) -> str:
        import contextlib

        from server.embedded import embedded_services
        from server.settings import load_settings

        settings = load_settings()
        settings = msgspec.structs.replace(
            settings, redis_url=settings.redis_url or "redis://unused"
        )
        self._stack = contextlib.ExitStack()
        resolved = self._stack.enter_context(embedded_services(settings))
        assert resolved.database_url is not None
        return resolved.database_url

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
