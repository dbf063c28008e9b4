"""Records to typed rows: ``msgspec.convert`` in one place instead of hand-copied fields.

A repository selects the columns a Struct names (``AS`` renames where the column name and
the field differ) and converts each record with ``row_as``/``rows_as``. msgspec checks every
value against the field's type, so a column that changes type fails at the boundary with the
field's name instead of travelling on as ``Any``. ``jsonb`` arrives from asyncpg as text
(no codec is set on the pool, and code written before this module decodes it itself), so
the JSON columns are named and decoded here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import asyncpg
import msgspec

T = TypeVar("T")


def row_as(
    type_: type[T],
    record: asyncpg.Record,
    *,
    json: Iterable[str] = (),
    extra: Mapping[str, object] | None = None,
) -> T:
    """``record`` as a ``type_`` (a msgspec Struct); ``json`` names its jsonb columns and
    ``extra`` gives the fields that are not columns (nested lists read separately)."""
    values: dict[str, object] = dict(record.items())
    if extra:
        values.update(extra)
    for column in json:
        raw = values.get(column)
        if isinstance(raw, str):
            values[column] = msgspec.json.decode(raw)
    return msgspec.convert(values, type_)


def rows_as(
    type_: type[T], records: Iterable[asyncpg.Record], *, json: Iterable[str] = ()
) -> list[T]:
    columns = tuple(json)
    return [row_as(type_, record, json=columns) for record in records]


def returned(record: asyncpg.Record | None) -> asyncpg.Record:
    """The row of a statement that always returns one (``INSERT ... RETURNING``)."""
    if record is None:
        raise RuntimeError("the statement returned no row")
    return record
