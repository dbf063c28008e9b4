"""Piccolo's query builder for plain CRUD, run on the caller's connection.

Repositories write the plain statements (select some columns by key, update a few columns,
insert a row, delete by key) with the Piccolo table classes of ``db/tables/``: columns are
named once, a typo fails at import, and ``as_alias`` states each rename into a Struct field.
Piccolo only *builds* the statement here; the connection from ``db/pool.py`` runs it, so it
joins the caller's transaction and obeys the acquire timeout and the no-nesting rule
(Piccolo's own ``.run()`` would take a second connection from the pool behind the caller's
back, which is exactly the deadlock db/pool.py exists to prevent).

What the builder does not express stays SQL, next to a comment saying why: keyset pages over
the catalog's ``tsvector``, the rooms' group commit, ``FOR UPDATE SKIP LOCKED`` claims, row
locks (``FOR UPDATE``), ``ON CONFLICT`` upserts, window shifts over ordered children.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
from piccolo.columns import Column
from piccolo.query.base import Query
from piccolo.table import Table

from db.pool import Connection


async def patch(conn: Connection, table: type[Table], row_id: object, body: msgspec.Struct) -> bool:
    """Set the columns a PATCH body names (its ``UNSET`` fields are left out; field names are
    column names) on the row whose ``id`` is ``row_id``; whether it set any."""
    values: dict[Column | str, Any] = {
        getattr(table, name): value
        for name, value in msgspec.structs.asdict(body).items()
        if value is not msgspec.UNSET
    }
    if values:
        await execute(conn, table.update(values).where(table._meta.primary_key == row_id))
    return bool(values)


def compiled(query: Query[Any, Any]) -> tuple[str, list[Any]]:
    """The statement and its arguments, as asyncpg takes them (``$1``, ``$2``...)."""
    (statement,) = query.querystrings
    sql, args = statement.compile_string(engine_type="postgres")
    return sql, list(args)


async def fetch(conn: Connection, query: Query[Any, Any]) -> list[asyncpg.Record]:
    sql, args = compiled(query)
    return await conn.fetch(sql, *args)


async def fetchrow(conn: Connection, query: Query[Any, Any]) -> asyncpg.Record | None:
    sql, args = compiled(query)
    return await conn.fetchrow(sql, *args)


async def fetchval(conn: Connection, query: Query[Any, Any]) -> Any:
    sql, args = compiled(query)
    return await conn.fetchval(sql, *args)


async def execute(conn: Connection, query: Query[Any, Any]) -> str:
    sql, args = compiled(query)
    return await conn.execute(sql, *args)


async def insert_if_absent(conn: Connection, table: str, values: dict[str, object]) -> bool:
    """Insert a row unless it would repeat one a unique constraint allows once (a member, a
    collaborator, an input): ``ON CONFLICT DO NOTHING``, which Piccolo's insert cannot say.
    Whether the row was inserted. ``table`` and the column names are the code's, never
    input."""
    columns = ", ".join(values)
    params = ", ".join(f"${i + 1}" for i in range(len(values)))
    inserted = await conn.fetchval(
        f"INSERT INTO {table} ({columns}) VALUES ({params}) ON CONFLICT DO NOTHING RETURNING 1",
        *values.values(),
    )
    return inserted is not None
