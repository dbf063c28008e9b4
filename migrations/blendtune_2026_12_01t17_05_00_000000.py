"""Room versions are idempotent by op id (schema_room_versions_op_id.sql)."""

from db.migrate import sql_migration

ID = "2026-12-01T17:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "room versions: op ids"

forwards = sql_migration(ID, DESCRIPTION, up="schema_room_versions_op_id.sql", down="schema_room_versions_op_id_down.sql")
