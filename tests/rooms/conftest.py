"""Fixtures for the rooms tests: server processes serving the test ``notes`` kind."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from tests.rooms.notes import members_key
from tests.support import Backends, RedisProcess, ServerProcess, TestUser, make_user

# Short timings so the suite stays fast; every test server gets these unless it overrides.
ROOM_ENV = {
    "BLENDTUNE_ROOM_KINDS": "tests.rooms.notes:NotesKind",
    "BLENDTUNE_PRESENCE_TTL_SECONDS": "3",
    "BLENDTUNE_WS_AUTH_TIMEOUT_SECONDS": "1",
    "BLENDTUNE_WS_OPS_PER_SECOND": "100",
    "BLENDTUNE_ROOM_SNAPSHOT_EVERY": "10",
    "BLENDTUNE_ROOM_LOG_RETENTION": "20",
    "BLENDTUNE_WS_MAX_FRAME_BYTES": "16384",
    "BLENDTUNE_SHUTDOWN_GRACE_SECONDS": "5",
}

StartRoomServer = Callable[..., Awaitable[ServerProcess]]

# Start-up imports numpy, scipy and pedalboard: on 2 shared cores under load it can take far
# longer than the 30 s default.
READY_WITHIN = 120.0


@pytest.fixture(scope="package")
async def pair(backends: Backends) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two independent server processes on one database and one Redis."""
    a, b = ServerProcess(backends, ROOM_ENV), ServerProcess(backends, ROOM_ENV)
    a.start()
    b.start()
    try:
        await a.wait_ready(READY_WITHIN)
        await b.wait_ready(READY_WITHIN)
        yield a, b
    finally:
        a.terminate()
        b.terminate()


@pytest.fixture
async def start_room_server(backends: Backends) -> AsyncIterator[StartRoomServer]:
    started: list[ServerProcess] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        process = ServerProcess(backends, {**ROOM_ENV, **(env or {})})
        started.append(process)
        process.start(*args)
        await process.wait_ready(READY_WITHIN)
        return process

    yield start
    for process in started:
        with contextlib.suppress(Exception):
            process.terminate()


@pytest.fixture
async def redis(backends: Backends) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(backends.redis_url)
    yield client
    await client.aclose()


class Rooms:
    """Creates notes rooms with members (membership lives in Redis for the test kind)."""

    def __init__(self, db: asyncpg.Connection, redis: aioredis.Redis, prefix: str) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix

    async def create(self, *members: tuple[TestUser, str]) -> uuid.UUID:
        room_id = uuid.uuid4()
        mapping: dict[FieldT, EncodableT] = {"-": "-"}  # the room exists even with no members
        mapping.update({str(user.id): role for user, role in members})
        await self.redis.hset(members_key(self.prefix, room_id), mapping=mapping)
        return room_id

    async def add(self, room_id: uuid.UUID, user: TestUser, role: str) -> None:
        await self.redis.hset(members_key(self.prefix, room_id), str(user.id), role)

    async def user(self) -> TestUser:
        return await make_user(self.db)

    async def ops(self, room_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(
            await self.db.fetch(
                "SELECT seq, author_id, op_id, body FROM room_ops WHERE room_id = $1 ORDER BY seq",
                room_id,
            )
        )

    async def seq(self, room_id: uuid.UUID) -> int | None:
        value = await self.db.fetchval("SELECT seq FROM rooms WHERE id = $1", room_id)
        return None if value is None else int(value)


@pytest.fixture
async def notes(db: asyncpg.Connection, redis: aioredis.Redis, backends: Backends) -> Rooms:
    return Rooms(db, redis, backends.redis_prefix)


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisProcess]:
    process = RedisProcess()
    process.start()
    yield process
    process.stop()


async def set_members(url: str, prefix: str, room: uuid.UUID, *users: TestUser) -> None:
    client = aioredis.from_url(url)
    mapping: dict[FieldT, EncodableT] = {"-": "-", **{str(user.id): "editor" for user in users}}
    await client.hset(members_key(prefix, room), mapping=mapping)
    await client.aclose()
