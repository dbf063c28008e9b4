"""Pieces shared by the music REST areas (catalog, uploads, releases, playlists).

Wire types reject NUL characters (PostgreSQL text cannot hold them) and carry the column
lengths of the schema, so bad input is a 400 before it reaches the database. Cursors for
keyset pagination are opaque base64url JSON.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar.params import Parameter

from db.pool import Connection, Pool
from server.problems import Problem

NO_NUL = r"^[^\x00]*$"
URL = r"^https?://[^\s\x00]+$"


def text(max_length: int, min_length: int = 0) -> Any:
    return msgspec.Meta(min_length=min_length, max_length=max_length, pattern=NO_NUL)


Name = Annotated[str, text(255, 1)]
Str100 = Annotated[str, text(100)]
Str255 = Annotated[str, text(255)]
LongText = Annotated[str, text(5000)]
Url = Annotated[str, msgspec.Meta(max_length=500, pattern=URL)]
Isrc = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")]
Limit = Annotated[int, Parameter(ge=1, le=100, description="Page size (1-100).")]
CursorParam = Annotated[
    str | None,
    Parameter(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9_=-]+$",
        description="Opaque cursor from the previous page's next_cursor.",
    ),
]


def query_text(max_length: int, description: str = "") -> Any:
    return Parameter(max_length=max_length, pattern=NO_NUL, description=description or None)


class Empty(msgspec.Struct):
    pass


# ------------------------------------------------------------------------------ cursors


def encode_cursor(*values: Any) -> str:
    raw = msgspec.json.encode(list(values), enc_hook=_enc)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The values in a cursor; 400 for anything this server did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise Problem(400, "invalid_cursor", "The cursor is not valid.") from None
    if not isinstance(values, list):
        raise Problem(400, "invalid_cursor", "The cursor is not valid.")
    return values


def cursor_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Problem(400, "invalid_cursor", "The cursor is not valid.") from None


def cursor_datetime(value: Any) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise Problem(400, "invalid_cursor", "The cursor is not valid.") from None


def _enc(value: Any) -> Any:
    if isinstance(value, uuid.UUID | dt.date):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    raise TypeError(f"cannot encode {type(value)!r} in a cursor")


# ------------------------------------------------------------------------------ helpers


def unique_strings(
    values: list[str] | None, *, name: str, max_items: int, max_length: int
) -> list[str]:
    """Validate a repeated query parameter; duplicates are dropped, order kept."""
    if not values:
        return []
    if len(values) > max_items:
        raise Problem(400, "invalid_request", f"At most {max_items} values for {name}.")
    seen: dict[str, None] = {}
    for value in values:
        if not value or len(value) > max_length or "\x00" in value:
            raise Problem(
                400, "invalid_request", f"Each {name} value needs 1-{max_length} characters."
            )
        seen[value] = None
    return list(seen)


_CONSTRAINT_RE = re.compile(r"[a-z0-9_]+")


def constraint_of(exc: BaseException) -> str:
    name = getattr(exc, "constraint_name", None) or ""
    return name if _CONSTRAINT_RE.fullmatch(name) else ""


async def newest_first(
    conn: Connection | Pool,
    select_from: str,
    where: str,
    args: list[Any],
    *,
    alias: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[asyncpg.Record], str | None]:
    """One page of rows ordered newest first by ``(created_at, id)`` of ``alias``, and the
    cursor of the next page (None on the last one).

    ``select_from`` is ``SELECT ... FROM ...``; ``where`` refers to ``args`` as $2, $3, ...
    ($1 is the limit).
    """
    params: list[Any] = [limit + 1, *args]
    if cursor is not None:
        values = decode_cursor(cursor)
        if len(values) != 2:
            raise Problem(400, "invalid_cursor", "The cursor is not valid.")
        params += [cursor_datetime(values[0]), cursor_uuid(values[1])]
        where += f" AND ({alias}.created_at, {alias}.id) < (${len(params) - 1}, ${len(params)})"
    rows = await conn.fetch(
        f"{select_from} WHERE {where} ORDER BY {alias}.created_at DESC, {alias}.id DESC LIMIT $1",
        *params,
    )
    if len(rows) <= limit:
        return list(rows), None
    last = rows[limit - 1]
    return list(rows[:limit]), encode_cursor(last["created_at"].isoformat(), last["id"])
