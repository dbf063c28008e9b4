"""Per-user plays of catalog tracks, a blend taste source (schema_blends_track_plays.sql)."""

from pathlib import Path

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T09:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "per-user track plays for blends"

_HERE = Path(__file__).parent


async def _execute(filename: str) -> None:
    # Piccolo runs each migration inside a transaction; execute() without arguments
    # uses the simple query protocol, which accepts a whole script.
    engine = engine_finder()
    assert engine is not None
    transaction = engine.current_transaction.get()
    assert transaction is not None
    await transaction.connection.execute((_HERE / filename).read_text())


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="blendtune", description=DESCRIPTION)

    async def up() -> None:
        await _execute("schema_blends_track_plays.sql")

    async def down() -> None:
        await _execute("schema_blends_track_plays_down.sql")

    manager.add_raw(up)
    manager.add_raw_backwards(down)
    return manager
