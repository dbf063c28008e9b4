"""Apply and roll back migrations, and tell whether a database is up to date.

Migrations are Piccolo migration modules in ``migrations/``. Several processes may start at
once, so every run holds a PostgreSQL advisory lock.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

APP = "blendtune"
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# An arbitrary constant: the advisory lock key that serialises migration runs.
_LOCK_KEY = 0x626C656E64


class MigrationError(Exception):
    pass


def sql_migration(
    migration_id: str, description: str, up: str, down: str
) -> Callable[[], Awaitable[Any]]:
    """The ``forwards`` of a migration module that runs SQL files from ``migrations/``.

    Piccolo runs each migration inside a transaction; ``execute()`` without arguments uses
    the simple query protocol, which accepts a whole script.
    """
    from piccolo.apps.migrations.auto.migration_manager import MigrationManager
    from piccolo.engine import engine_finder

    async def run(filename: str) -> None:
        engine = engine_finder()
        assert engine is not None
        transaction = engine.current_transaction.get()
        assert transaction is not None
        await transaction.connection.execute((MIGRATIONS / filename).read_text())

    async def forwards() -> MigrationManager:
        manager = MigrationManager(migration_id=migration_id, app_name=APP, description=description)

        async def apply() -> None:
            await run(up)

        async def revert() -> None:
            await run(down)

        manager.add_raw(apply)
        manager.add_raw_backwards(revert)
        return manager

    return forwards


def _configure(database_url: str) -> None:
    os.environ["PICCOLO_CONF"] = "db.piccolo_conf"
    os.environ["BLENDTUNE_DATABASE_URL"] = database_url
    # piccolo_conf builds its engine at import; rebuild it for this URL.
    import sys

    sys.modules.pop("db.piccolo_conf", None)
    from piccolo.apps.migrations.tables import Migration

    Migration._meta._db = None


@contextlib.asynccontextmanager
async def _locked(database_url: str) -> AsyncIterator[None]:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        yield
    finally:
        await conn.close()


def available() -> list[str]:
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    from db.piccolo_app import APP_CONFIG

    modules = BaseMigrationManager().get_migration_modules(
        APP_CONFIG.resolved_migrations_folder_path
    )
    return sorted(modules)


async def applied(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('migration') IS NOT NULL")
        if not exists:
            return []
        rows = await conn.fetch("SELECT name FROM migration WHERE app_name = $1", APP)
        return sorted(r["name"] for r in rows)
    finally:
        await conn.close()


async def pending(database_url: str) -> list[str]:
    done = set(await applied(database_url))
    return [m for m in available() if m not in done]


async def forwards(database_url: str) -> list[str]:
    """Apply every pending migration; return the ids applied."""
    from piccolo.apps.migrations.commands.forwards import ForwardsMigrationManager

    async with _locked(database_url):
        todo = await pending(database_url)
        if not todo:
            return []
        _configure(database_url)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            result = await ForwardsMigrationManager(app_name=APP).run()
        if not result.success:
            raise MigrationError(f"{result.message}\n{out.getvalue()}")
        return todo


async def backwards(database_url: str) -> list[str]:
    """Roll every migration back, leaving an empty schema; return the ids reversed."""
    from piccolo.apps.migrations.commands.backwards import BackwardsMigrationManager

    async with _locked(database_url):
        done = await applied(database_url)
        if not done:
            return []
        _configure(database_url)
        manager = BackwardsMigrationManager(app_name=APP, migration_id="all", auto_agree=True)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            result = await manager.run()
        if not result.success:
            raise MigrationError(f"{result.message}\n{out.getvalue()}")
        return list(reversed(done))
