"""The initial schema: every table of the merged data model (see schema_0001.sql)."""

from db.migrate import sql_migration

ID = "2026-11-25T08:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "initial schema"

forwards = sql_migration(ID, DESCRIPTION, up="schema_0001.sql", down="schema_0001_down.sql")
