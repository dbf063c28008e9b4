"""The database engine: one Piccolo PostgresEngine (an asyncpg pool) per process."""

from __future__ import annotations

from piccolo.engine.postgres import PostgresEngine

from db import pool
from db.tables import ALL_TABLES


def create_engine(database_url: str) -> PostgresEngine:
    # Piccolo passes config straight to asyncpg.connect; the DSN may name a Unix socket
    # (`?host=/path`), which is how the embedded PostgreSQL is reached.
    return PostgresEngine(config={"dsn": database_url}, log_queries=False)


def bind_tables(engine: PostgresEngine) -> None:
    """Point every table at ``engine`` (instead of Piccolo's piccolo_conf lookup)."""
    for table in ALL_TABLES:
        table._meta.db = engine


async def start(engine: PostgresEngine, *, min_size: int = 2, max_size: int = 10) -> None:
    # ``reset``: asyncpg's reset on release, skipped for holders that say they need none
    # (db/pool.py).
    await engine.start_connection_pool(min_size=min_size, max_size=max_size, reset=pool.reset)


async def stop(engine: PostgresEngine) -> None:
    await engine.close_connection_pool()
