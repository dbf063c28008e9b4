"""Migrations build the merged schema from an empty database and roll it back to empty."""

import os
import subprocess
import sys

import asyncpg

from db import migrate
from db.tables import ALL_TABLES
from tests.support import ROOT

EXPECTED_TABLES = {t._meta.tablename for t in ALL_TABLES}
EXPECTED_ENUMS = {
    "user_role", "outbox_status", "release_status", "upload_status", "analysis_status",
    "upload_job_kind", "upload_job_status", "generation_status", "provider", "time_range",
    "blend_status", "participant_status", "mashup_role",
}  # fmt: skip


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'migration'"
    )
    return {r["tablename"] for r in rows}


async def _enums(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT typname FROM pg_type WHERE typtype = 'e'")
    return {r["typname"] for r in rows}


async def test_up_from_empty_and_back_down(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await _tables(conn) == set()
        assert await migrate.pending(fresh_database) == migrate.available()

        applied = await migrate.forwards(fresh_database)
        assert applied == migrate.available()
        assert await _tables(conn) == EXPECTED_TABLES
        assert await _enums(conn) == EXPECTED_ENUMS
        assert await migrate.pending(fresh_database) == []
        # Running again is a no-op.
        assert await migrate.forwards(fresh_database) == []

        reversed_ids = await migrate.backwards(fresh_database)
        assert reversed_ids == list(reversed(applied))
        assert await _tables(conn) == set()
        assert await _enums(conn) == set()

        # And up again, to show the down migration left nothing behind.
        await migrate.forwards(fresh_database)
        assert await _tables(conn) == EXPECTED_TABLES
    finally:
        await conn.close()


async def test_piccolo_tables_match_the_database(db: asyncpg.Connection) -> None:
    for table in ALL_TABLES:
        rows = await db.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1",
            table._meta.tablename,
        )
        in_db = {r["column_name"] for r in rows} - {"search"}  # generated tsvector, SQL only
        in_piccolo = {c._meta.db_column_name for c in table._meta.columns}
        assert in_piccolo == in_db, table._meta.tablename


def _cli(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")}
    env["BLENDTUNE_DATABASE_URL"] = database_url
    env["BLENDTUNE_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_serve_refuses_an_out_of_date_schema(fresh_database: str) -> None:
    result = _cli(["serve", "--no-migrate", "--port", "0"], fresh_database)
    assert result.returncode != 0
    assert "out of date" in result.stderr and "blendtune migrate" in result.stderr
    assert "Traceback" not in result.stderr

    migrated = _cli(["migrate"], fresh_database)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("applied ")
    assert await migrate.pending(fresh_database) == []

    rolled = _cli(["migrate", "--rollback"], fresh_database)
    assert rolled.returncode == 0 and "rolled back" in rolled.stdout
    assert await migrate.pending(fresh_database) == migrate.available()
