"""A Redis Cluster of the tests' own, and three ``serve`` processes on it (issue #15).

The cluster lives for the package (about 3 s to start); the tests that change it (a reshard,
then a master killed) run last, in that order, in test_rooms.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio.cluster import RedisCluster

from server.redis_client import create_redis
from tests.cluster.support import LocalCluster
from tests.rooms.conftest import ROOM_ENV, Rooms
from tests.support import Backends, ServerProcess

# Resumes reach far back (a failover may cost a few hundred batches in a busy room); the
# rest as in the rooms tests.
CLUSTER_ENV = {
    **ROOM_ENV,
    "BLENDTUNE_ROOM_SNAPSHOT_EVERY": "200",
    "BLENDTUNE_ROOM_LOG_RETENTION": "1000",
    "BLENDTUNE_ROOM_OP_ID_HOURS": "1",
    "BLENDTUNE_AUTH_RATE_LIMIT_PER_MINUTE": "5",
}


@pytest.fixture(scope="package")
async def cluster() -> AsyncIterator[LocalCluster]:
    local = LocalCluster()
    try:
        await local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="package")
async def cluster_redis(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    client = create_redis(cluster.url)
    assert isinstance(client, RedisCluster)
    yield client
    await client.aclose()


@pytest.fixture(scope="package")
async def trio(backends: Backends, cluster: LocalCluster) -> AsyncIterator[list[ServerProcess]]:
    """Three server processes on one database and the cluster."""
    env = {**CLUSTER_ENV, "BLENDTUNE_REDIS_URL": cluster.url}
    processes = [ServerProcess(backends, env) for _ in range(3)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            # (Three processes importing at once on a shared 2-core machine can take a while.)
            await process.wait_ready(within=90)
        yield processes
    finally:
        for process in processes:
            process.terminate()


@pytest.fixture
async def rooms(db: asyncpg.Connection, cluster_redis: RedisCluster, backends: Backends) -> Rooms:
    """Notes rooms whose membership lives in the cluster."""
    return Rooms(db, cluster_redis, backends.redis_prefix)  # type: ignore[arg-type]
