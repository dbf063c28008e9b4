"""Issue and revoke the share code of a blend or mashup row.

Both tables carry ``share_code`` (unique, canonical form) and ``share_code_expires_at``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import asyncpg

from db.pool import Connection
from server.problems import Problem
from server.share_codes import codes
from server.share_codes.schemas import ShareCode

Table = Literal["blends", "mashups"]


def invalid_share_code() -> Problem:
    # One answer for a mistyped, unknown, expired or revoked code.
    return Problem(
        404, "invalid_share_code", "This share code is not valid: it may be mistyped or expired."
    )


async def row_for_code(conn: Connection, table: Table, code: str) -> uuid.UUID | None:
    """The row a live code opens, locked for the join; None for any invalid code."""
    found: uuid.UUID | None = await conn.fetchval(
        f"SELECT id FROM {table} WHERE share_code = $1 AND share_code_expires_at > now()"
        " FOR UPDATE",
        code,
    )
    return found


async def issue(conn: Connection, table: Table, row_id: uuid.UUID, days: int) -> ShareCode:
    """A fresh code for the row, replacing any earlier one; it expires after ``days``."""
    for _ in range(5):
        code = codes.new_code()
        try:
            async with conn.transaction():  # a savepoint: a clash retries with another code
                expires_at: datetime = await conn.fetchval(
                    f"UPDATE {table} SET share_code = $2,"
                    " share_code_expires_at = now() + make_interval(days => $3)"
                    " WHERE id = $1 RETURNING share_code_expires_at",
                    row_id,
                    code,
                    days,
                )
        except asyncpg.UniqueViolationError:
            continue
        return ShareCode(code=codes.display(code), expires_at=expires_at)
    raise Problem(503, "unavailable", "Could not allocate a share code; please retry.")


async def revoke(conn: Connection, table: Table, row_id: uuid.UUID) -> None:
    await conn.execute(
        f"UPDATE {table} SET share_code = NULL, share_code_expires_at = NULL WHERE id = $1",
        row_id,
    )


def displayed(code: str, expires_at: datetime) -> ShareCode:
    """A stored (canonical) code as the client shows it."""
    return ShareCode(code=codes.display(code), expires_at=expires_at)
