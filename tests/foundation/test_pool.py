"""The pool's two rules (db/pool.py): acquires time out (a request gets 503), and a task never
nests them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from db import pool as db_pool
from db.pool import NestedAcquire, Pool
from tests.conftest import StartServer
from tests.support import Backends, eventually, make_user, new_address


@pytest.fixture
async def pool(backends: Backends) -> AsyncIterator[Pool]:
    raw = await asyncpg.create_pool(backends.database_url, min_size=1, max_size=2)
    try:
        yield Pool(raw, acquire_timeout=0.5)
    finally:
        await raw.close()


async def test_a_task_holding_a_connection_may_not_take_another(pool: Pool) -> None:
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
        with pytest.raises(NestedAcquire):
            await pool.fetchval("SELECT 2")
        with pytest.raises(NestedAcquire):
            async with pool.acquire():
                pass
        # A task of its own does not wait on this one's connection: it may take one.
        assert await asyncio.create_task(pool.fetchval("SELECT 3")) == 3
    # Let go, the same task acquires again, one after another.
    assert await pool.fetchval("SELECT 4") == 4
    assert await pool.fetchval("SELECT 5") == 5
    assert pool.get_idle_size() == pool.get_size()


async def test_a_clean_release_skips_the_reset_query_and_a_plain_one_still_resets(
    backends: Backends,
) -> None:
    # One connection, so every acquire gets the same session back.
    raw = await asyncpg.create_pool(
        backends.database_url, min_size=1, max_size=1, reset=db_pool.reset
    )
    try:
        one = Pool(raw, acquire_timeout=0.5)
        # (A clean holder promises to change no session state; this one breaks the promise
        # to show that no reset query ran.)
        async with one.acquire(clean=True) as conn:
            await conn.execute("SET application_name = 'left-behind'")
        async with one.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "left-behind"
        async with one.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") != "left-behind"
            await conn.execute("SET application_name = 'left-behind'")
        # An open transaction is rolled back on a clean release too.
        async with one.acquire(clean=True) as conn:
            await conn.execute("RESET application_name")
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE gone (x int)")
        async with one.acquire() as conn:
            assert await conn.fetchval("SELECT to_regclass('pg_temp.gone')") is None
    finally:
        await raw.close()


async def test_an_exhausted_pool_times_out_instead_of_hanging(pool: Pool) -> None:
    held = [asyncio.Event(), asyncio.Event()]
    release = asyncio.Event()

    async def hold(event: asyncio.Event) -> None:
        async with pool.acquire():
            event.set()
            await release.wait()

    holders = [asyncio.create_task(hold(event)) for event in held]
    try:
        await asyncio.gather(*(event.wait() for event in held))
        with pytest.raises(TimeoutError):
            await pool.fetchval("SELECT 1")
    finally:
        release.set()
        await asyncio.gather(*holders)
    # Given back, the connections serve again.
    assert await pool.fetchval("SELECT 1") == 1


async def test_a_request_that_finds_the_pool_exhausted_gets_503(
    start_server: StartServer, db: asyncpg.Connection, backends: Backends
) -> None:
    server = await start_server(
        env={"BLENDTUNE_DB_POOL_SIZE": "2", "BLENDTUNE_DB_ACQUIRE_TIMEOUT_SECONDS": "2"}
    )
    user = await make_user(db)
    headers = {**user.headers, "X-Forwarded-For": new_address()}
    async with httpx.AsyncClient(base_url=server.url, timeout=60, headers=headers) as client:
        created = await client.post("/playlists", json={"name": "Held"})
        assert created.status_code == 201, created.text
        path = f"/playlists/{created.json()['id']}"
        # Two requests take both connections and wait on a lock the test holds.
        async with db.transaction():
            await db.execute("LOCK TABLE playlists IN ACCESS EXCLUSIVE MODE")
            held = [asyncio.create_task(client.get(path)) for _ in range(2)]

            async def both_waiting() -> bool:
                waiting = await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                    " AND wait_event_type = 'Lock'",
                    backends.database_name,
                )
                return bool(waiting == 2)

            await eventually(both_waiting, what="two requests waiting on the lock")
            starved = await client.get("/auth/whoami")
            assert starved.status_code == 503, starved.text
            assert starved.json()["code"] == "unavailable"
            assert starved.headers["retry-after"] == "5"
        # The lock let go, the held requests finish and the pool serves again.
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        assert (await client.get("/auth/whoami")).status_code == 200
