"""Room history: named versions and checkpoints (schema_room_history.sql)."""

from db.migrate import sql_migration

ID = "2026-12-01T17:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "room history: named versions and checkpoints"

forwards = sql_migration(ID, DESCRIPTION, up="schema_room_history.sql", down="schema_room_history_down.sql")
