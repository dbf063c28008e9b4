"""Uploads analysed before structure analysis are analysed again (schema_upload_reanalysis.sql)."""

from db.migrate import sql_migration

ID = "2026-12-01T19:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "uploads: analyse again the ones without structure"

forwards = sql_migration(ID, DESCRIPTION, up="schema_upload_reanalysis.sql", down="schema_upload_reanalysis_down.sql")
