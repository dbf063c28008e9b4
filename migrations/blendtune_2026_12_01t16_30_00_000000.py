"""Mashup generation jobs: durable, leased, one under way per mashup (schema_mashup_generation.sql)."""

from db.migrate import sql_migration

ID = "2026-12-01T16:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "mashup generation jobs"

forwards = sql_migration(ID, DESCRIPTION, up="schema_mashup_generation.sql", down="schema_mashup_generation_down.sql")
