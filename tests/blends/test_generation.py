"""The generation job: one weaver per blend, crash recovery, and the daily schedule."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from db import engine as db_engine
from server.blends.generation import BlendJobs
from server.services import Services, build_services
from server.settings import Settings
from tests.blends.support import create_blend, import_taste, songs, wait_for_weave
from tests.conftest import StartServer
from tests.support import Backends, eventually, make_user

LOCK = "SELECT pg_advisory_lock(x'626C656E'::int, hashtext($1))"
UNLOCK = "SELECT pg_advisory_unlock(x'626C656E'::int, hashtext($1))"


@pytest.fixture
async def services(backends: Backends) -> AsyncIterator[Services]:
    """The job's dependencies in this process, on this run's database and Redis."""
    built = build_services(
        Settings(
            database_url=backends.database_url,
            redis_url=backends.redis_url,
            redis_prefix=backends.redis_prefix,
        )
    )
    await db_engine.start(built.engine)
    try:
        yield built
    finally:
        await built.redis.aclose()
        await db_engine.stop(built.engine)


async def _status(db: asyncpg.Connection, blend_id: uuid.UUID) -> str:
    status: str = await db.fetchval("SELECT status::text FROM blends WHERE id = $1", blend_id)
    return status


async def _blend_with_taste(http: httpx.AsyncClient, db: asyncpg.Connection) -> uuid.UUID:
    """A blend whose first weave (by the server that created it) is done."""
    owner = await make_user(db)
    await import_taste(http, owner, songs("gen", 8))
    blend = await create_blend(http, owner, playlist_length=5)
    await wait_for_weave(http, owner, blend["id"], members=1)
    return uuid.UUID(blend["id"])


async def test_one_process_weaves_a_blend_at_a_time(
    http: httpx.AsyncClient, db: asyncpg.Connection, services: Services
) -> None:
    blend_id = await _blend_with_taste(http, db)
    jobs = BlendJobs(services)
    holder = await asyncpg.connect(services.settings.database_url)
    try:
        # Another weaver holds the blend: this one leaves it alone.
        await holder.execute(LOCK, str(blend_id))
        await db.execute("UPDATE blends SET status = 'pending' WHERE id = $1", blend_id)
        assert await jobs.generate(blend_id) is False
        assert await _status(db, blend_id) == "pending"
        await holder.execute(UNLOCK, str(blend_id))
        assert await jobs.generate(blend_id) is True
        assert await _status(db, blend_id) == "completed"
        assert (
            await db.fetchval("SELECT count(*) FROM blend_tracks WHERE blend_id = $1", blend_id)
            == 5
        )
    finally:
        await holder.close()


async def test_a_weave_left_half_done_is_taken_over(
    http: httpx.AsyncClient, db: asyncpg.Connection, services: Services
) -> None:
    blend_id = await _blend_with_taste(http, db)
    # Wait until the server that wove it has let go, then play a process that died while
    # weaving: 'processing', half its tracks written, and its lock gone with its connection.
    await db.execute(LOCK, str(blend_id))
    await db.execute("UPDATE blends SET status = 'processing' WHERE id = $1", blend_id)
    await db.execute("DELETE FROM blend_tracks WHERE blend_id = $1 AND position > 1", blend_id)
    await db.execute(UNLOCK, str(blend_id))
    jobs = BlendJobs(services)
    assert await jobs.scan() >= 1
    assert await _status(db, blend_id) == "completed"
    tracks = await db.fetchval("SELECT count(*) FROM blend_tracks WHERE blend_id = $1", blend_id)
    assert tracks == 5


async def test_daily_regeneration_by_the_scheduler(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server(env={"BLENDTUNE_BLEND_SCAN_SECONDS": "0.2"})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        blend_id = await _blend_with_taste(client, db)
    # Pretend the last weave was yesterday: the scheduler weaves it again by itself.
    yesterday = await db.fetchval(
        "UPDATE blends SET status = 'completed', completed_at = now() - interval '25 hours'"
        " WHERE id = $1 RETURNING completed_at",
        blend_id,
    )
    await eventually(
        lambda: db.fetchval(
            "SELECT status = 'completed' AND completed_at > $2 FROM blends WHERE id = $1",
            blend_id,
            yesterday,
        ),
        what="the scheduler regenerating the blend",
    )
    assert await db.fetchval("SELECT count(*) FROM blend_tracks WHERE blend_id = $1", blend_id) == 5
    # Weaves are counted (this process wove the blend on creation; the daily one may have
    # been done by any process of the run).
    async with httpx.AsyncClient(base_url=server.url) as client:
        metrics = (await client.get("/metrics")).text
    woven = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("blendtune_blend_weaves_total ")
    )
    assert woven >= 1
