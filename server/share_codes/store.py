"""Issue and revoke the share code of a blend or mashup row.

Both tables carry ``share_code`` (unique, canonical form) and ``share_code_expires_at``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from server.problems import Problem
from server.share_codes import codes

Table = Literal["blends", "mashups"]


class ShareCode(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # displayed form, ABCD-EFGH
    expires_at: datetime


async def issue(conn: Any, table: Table, row_id: uuid.UUID, days: int) -> ShareCode:
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


async def revoke(conn: Any, table: Table, row_id: uuid.UUID) -> None:
    await conn.execute(
        f"UPDATE {table} SET share_code = NULL, share_code_expires_at = NULL WHERE id = $1",
        row_id,
    )


def from_row(row: Any) -> ShareCode:
    """The displayed code of a row holding ``share_code`` and ``share_code_expires_at``."""
    return ShareCode(code=codes.display(row["share_code"]), expires_at=row["share_code_expires_at"])
