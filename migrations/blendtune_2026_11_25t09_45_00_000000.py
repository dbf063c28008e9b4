"""Per-user plays of catalog tracks, a blend taste source (schema_blends_track_plays.sql)."""

from db.migrate import sql_migration

ID = "2026-11-25T09:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "per-user track plays for blends"

forwards = sql_migration(ID, DESCRIPTION, up="schema_blends_track_plays.sql", down="schema_blends_track_plays_down.sql")
