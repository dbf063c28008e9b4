"""Catalog keyset-pagination indexes and the creator split trigger (schema_0002_catalog.sql)."""

from db.migrate import sql_migration

ID = "2026-11-25T09:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "catalog keyset indexes, creator split trigger"

forwards = sql_migration(ID, DESCRIPTION, up="schema_0002_catalog.sql", down="schema_0002_catalog_down.sql")
