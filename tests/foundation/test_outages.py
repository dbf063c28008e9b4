"""A PostgreSQL outage degrades REST with clear 503s and recovers by itself; a cut Redis
connection costs no request once Redis answers again."""

import tempfile

import asyncpg
import httpx

from db import migrate
from tests.conftest import StartServer
from tests.rooms.proxy import Proxy
from tests.support import Backends


async def test_database_outage_gives_503_and_recovers(start_server: StartServer) -> None:
    from pgserver.postgres_server import get_server

    pgdata = tempfile.mkdtemp(prefix="bt-pg-outage-")
    postgres = get_server(pgdata, cleanup_mode="stop")
    url = postgres.get_uri("postgres")
    await migrate.forwards(url)
    try:
        server = await start_server(env={"BLENDTUNE_DATABASE_URL": url})
        async with httpx.AsyncClient(base_url=server.url) as client:
            headers = {"Authorization": "Bearer not-a-session"}
            assert (await client.get("/auth/whoami", headers=headers)).status_code == 401

            postgres.cleanup()  # stops PostgreSQL; the data directory stays
            down = await client.get("/auth/whoami", headers=headers)
            assert down.status_code == 503
            assert down.headers["content-type"].startswith("application/problem+json")
            assert down.json()["code"] == "unavailable" and "Retry-After" in down.headers
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "database" in ready.json()["detail"]

            postgres = get_server(pgdata, cleanup_mode="stop")
            for _ in range(100):
                if (await client.get("/readyz")).status_code == 200:
                    break
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/auth/whoami", headers=headers)).status_code == 401
            conn = await asyncpg.connect(url)
            assert await conn.fetchval("SELECT count(*) FROM users") == 0
            await conn.close()
    finally:
        postgres.cleanup()


async def test_the_first_request_after_a_redis_cut_succeeds(
    start_server: StartServer, backends: Backends
) -> None:
    """Every pooled Redis connection dies in a network cut; once Redis is reachable again, the
    next request reconnects instead of failing on a dead connection."""
    redis = httpx.URL(backends.redis_url)
    proxy = Proxy(redis.host, redis.port or 6379)
    await proxy.start()
    try:
        server = await start_server(
            env={"BLENDTUNE_REDIS_URL": f"redis://127.0.0.1:{proxy.port}{redis.path}"}
        )
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/readyz")).status_code == 200
            proxy.cut()
            proxy.up = True
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
    finally:
        await proxy.stop()
