"""What a running app holds: settings, the database engine, Redis and metrics.

Created in the app's lifespan and kept on ``app.state.services``; handlers receive it as the
``services`` dependency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import Litestar
from litestar.datastructures import State
from piccolo.engine.postgres import PostgresEngine

from db import engine as db_engine
from db import migrate
from db.pool import Pool
from server.metrics import Metrics
from server.redis_client import Keys, create_redis
from server.settings import Settings

if TYPE_CHECKING:
    from rooms.context import RedisClient as _Redis
else:
    # Litestar builds a msgspec model of every handler's dependencies, and msgspec refuses a
    # union of two classes (Redis | RedisCluster); at run time the field is left opaque.
    _Redis = Any


class SchemaOutOfDate(RuntimeError):
    pass


@dataclass
class Services:
    settings: Settings
    engine: PostgresEngine
    redis: _Redis  # one Redis or a Redis Cluster (server/redis_client.py)
    keys: Keys
    metrics: Metrics
    _pool: Pool | None = None

    @property
    def pool(self) -> Pool:
        """The asyncpg pool under Piccolo's engine (with an acquire timeout and no nested
        acquires: db/pool.py), for the queries written in SQL."""
        raw = self.engine.pool
        assert raw is not None, "the engine's pool is made in the lifespan"
        if self._pool is None or self._pool.raw is not raw:
            self._pool = Pool(raw, self.settings.db_acquire_timeout_seconds)
        return self._pool


def get_services(state: State) -> Services:
    services: Services = state.services
    return services


@asynccontextmanager
async def services_lifespan(app: Litestar) -> AsyncIterator[None]:
    services: Services = app.state.services
    settings = services.settings
    assert settings.database_url is not None
    todo = await migrate.pending(settings.database_url)
    if todo:
        raise SchemaOutOfDate(
            f"the database schema is out of date ({len(todo)} migration(s) pending): "
            "run `blendtune migrate`"
        )
    await db_engine.start(services.engine, max_size=settings.db_pool_size)
    try:
        yield
    finally:
        await services.redis.aclose()
        await db_engine.stop(services.engine)


def build_services(settings: Settings) -> Services:
    if settings.database_url is None or settings.redis_url is None:
        raise RuntimeError("the app needs BLENDTUNE_DATABASE_URL and BLENDTUNE_REDIS_URL")
    engine = db_engine.create_engine(settings.database_url)
    db_engine.bind_tables(engine)
    return Services(
        settings=settings,
        engine=engine,
        redis=create_redis(settings.redis_url),
        keys=Keys(settings.redis_prefix),
        metrics=Metrics(),
    )
