"""Uploads' structure, peaks and stem keys (schema_upload_structure.sql)."""

from db.migrate import sql_migration

ID = "2026-12-01T16:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "upload structure, peaks and stems"

forwards = sql_migration(
    ID, DESCRIPTION, up="schema_upload_structure.sql", down="schema_upload_structure_down.sql"
)
