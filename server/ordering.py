"""Ordered children: rows numbered densely under a parent (a playlist's tracks from 0, a
release's from 1), kept dense by every insert, removal and move.

One place for the shifting both playlists and releases do. Each change is a single
statement over the siblings it moves, run in the caller's transaction (with the parent row
locked, so two edits of one parent never interleave); ``release_tracks``' unique order is
``DEFERRABLE``, checked at the end of each statement, so a shift by one never trips it
half-way. Raw SQL rather than Piccolo's query builder: ``position = position + 1`` over a
range and the ``unnest ... WITH ORDINALITY`` renumbering are not plain CRUD.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from db.pool import Connection


@dataclass(frozen=True)
class OrderedChildren:
    """``table``'s rows under ``parent``, numbered by ``position`` from ``first``; ``child``
    is the column a move names a row by. The names are constants of the code, never input."""

    table: str
    parent: str
    child: str
    position: str
    first: int

    async def count(self, conn: Connection, parent_id: uuid.UUID) -> int:
        count: int = await conn.fetchval(
            f"SELECT count(*) FROM {self.table} WHERE {self.parent} = $1", parent_id
        )
        return count

    async def make_room(self, conn: Connection, parent_id: uuid.UUID, at: int) -> None:
        """Move the children at ``at`` and after one place down, to insert one at ``at``."""
        await self._shift(conn, parent_id, at, None, 1)

    async def remove(self, conn: Connection, parent_id: uuid.UUID, child_id: uuid.UUID) -> bool:
        """Remove a child, the ones after it moving up one place; False when ``child_id`` is
        not a child of the parent."""
        removed: int | None = await conn.fetchval(
            f"DELETE FROM {self.table} WHERE {self.parent} = $1 AND {self.child} = $2"
            f" RETURNING {self.position}",
            parent_id,
            child_id,
        )
        if removed is None:
            return False
        await self._shift(conn, parent_id, removed + 1, None, -1)
        return True

    async def move(
        self, conn: Connection, parent_id: uuid.UUID, child_id: uuid.UUID, to: int
    ) -> bool | None:
        """Move a child to ``to`` (clamped to the last place), the others making room. Whether
        it moved; None when ``child_id`` is not a child of the parent."""
        old: int | None = await conn.fetchval(
            f"SELECT {self.position} FROM {self.table}"
            f" WHERE {self.parent} = $1 AND {self.child} = $2",
            parent_id,
            child_id,
        )
        if old is None:
            return None
        new = min(to, self.first + await self.count(conn, parent_id) - 1)
        if new == old:
            return False
        if new < old:
            await self._shift(conn, parent_id, new, old - 1, 1)
        else:
            await self._shift(conn, parent_id, old + 1, new, -1)
        await conn.execute(
            f"UPDATE {self.table} SET {self.position} = $3"
            f" WHERE {self.parent} = $1 AND {self.child} = $2",
            parent_id,
            child_id,
            new,
        )
        return True

    async def renumber(
        self, conn: Connection, parent_id: uuid.UUID, child_ids: list[uuid.UUID]
    ) -> None:
        """Number the children in the order of ``child_ids`` (every child, each once)."""
        await conn.execute(
            f"UPDATE {self.table} t SET {self.position} = n.ord - 1 + $3"
            " FROM unnest($2::uuid[]) WITH ORDINALITY AS n(id, ord)"
            f" WHERE t.{self.child} = n.id AND t.{self.parent} = $1",
            parent_id,
            child_ids,
            self.first,
        )

    async def _shift(
        self, conn: Connection, parent_id: uuid.UUID, low: int, high: int | None, step: int
    ) -> None:
        await conn.execute(
            f"UPDATE {self.table} SET {self.position} = {self.position} + $4"
            f" WHERE {self.parent} = $1 AND {self.position} >= $2"
            f" AND ($3::int IS NULL OR {self.position} <= $3)",
            parent_id,
            low,
            high,
            step,
        )


PLAYLIST_TRACKS = OrderedChildren(
    table="playlist_tracks", parent="playlist_id", child="track_id", position="position", first=0
)
RELEASE_TRACKS = OrderedChildren(
    table="release_tracks", parent="release_id", child="id", position="track_order", first=1
)
