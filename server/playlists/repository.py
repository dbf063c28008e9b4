"""Playlists in PostgreSQL: every statement of the playlists domain.

Functions take the caller's connection and return msgspec Structs converted from the
records (``db/rows.py``). Plain CRUD is written with Piccolo's query builder
(``db/query.py``); SQL stays for the row lock with the caller's role, the keyset pages
(``server/catalog/common.py``), ``ON CONFLICT`` inserts and the ordered tracks' shifts
(``server/ordering.py``).
"""

from __future__ import annotations

import uuid
from typing import Any, Final, Literal

import msgspec

from db import query
from db.pool import Connection, Pool
from db.rows import row_as, rows_as
from db.tables.accounts import User
from db.tables.catalog import Track
from db.tables.playlists import Playlist, PlaylistCollaborator, PlaylistTrack
from server.catalog.common import newest_first
from server.playlists import schemas
from server.problems import Problem

_COLUMNS: Final = """
    p.id, p.user_id AS owner_id, p.name, p.description, p.is_public, p.is_collaborative,
    p.cover_image_url, p.created_at, p.updated_at
"""

Role = Literal["owner", "collaborator", "viewer"]


def playlist_not_found() -> Problem:
    # A private playlist is 404 to everybody else, so its existence does not leak.
    return Problem(404, "not_found", "No such playlist.")


class Access(msgspec.Struct, frozen=True):
    """The caller's relation to a playlist, read under the caller's transaction."""

    owner_id: uuid.UUID
    is_public: bool
    is_collaborative: bool
    collaborating: bool


async def role(
    conn: Connection, playlist_id: uuid.UUID, me: uuid.UUID, *, lock: bool = False
) -> tuple[Access, Role]:
    """The caller's role; 404 when the playlist does not exist or is private to them."""
    row = await conn.fetchrow(
        "SELECT p.user_id AS owner_id, p.is_public, p.is_collaborative,"
        " EXISTS (SELECT 1 FROM playlist_collaborators c"
        "  WHERE c.playlist_id = p.id AND c.user_id = $2) AS collaborating"
        " FROM playlists p WHERE p.id = $1" + (" FOR UPDATE OF p" if lock else ""),
        playlist_id,
        me,
    )
    if row is None:
        raise playlist_not_found()
    found = row_as(Access, row)
    if found.owner_id == me:
        return found, "owner"
    if found.collaborating:
        return found, "collaborator"
    if found.is_public:
        return found, "viewer"
    raise playlist_not_found()


async def touch(conn: Connection, playlist_id: uuid.UUID) -> None:
    await conn.execute("UPDATE playlists SET updated_at = now() WHERE id = $1", playlist_id)


# ------------------------------------------------------------------ playlists


async def insert(conn: Connection, owner_id: uuid.UUID, data: schemas.PlaylistCreate) -> uuid.UUID:
    playlist_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO playlists (user_id, name, description, is_public, is_collaborative,"
        " cover_image_url) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        owner_id,
        data.name,
        data.description,
        data.is_public,
        data.is_collaborative,
        data.cover_image_url,
    )
    return playlist_id


async def update(conn: Connection, playlist_id: uuid.UUID, data: schemas.PlaylistUpdate) -> None:
    """Set the fields the request names (``UNSET`` ones keep their value)."""
    if await query.patch(conn, Playlist, playlist_id, data):
        await touch(conn, playlist_id)


async def delete(conn: Connection, playlist_id: uuid.UUID) -> None:
    await query.execute(conn, Playlist.delete().where(Playlist.id == playlist_id))


async def page(
    pool: Pool, me: uuid.UUID, which: Literal["mine", "public"], limit: int, cursor: str | None
) -> schemas.PlaylistPage:
    """A page of playlists, newest first (keyset pages: SQL, server/catalog/common.py)."""
    args: list[Any] = []
    if which == "mine":
        args.append(me)
        where = (
            "(p.user_id = $2 OR EXISTS (SELECT 1 FROM playlist_collaborators c"
            " WHERE c.playlist_id = p.id AND c.user_id = $2))"
        )
    else:
        where = "p.is_public"
    rows, next_cursor = await newest_first(
        pool,
        f"SELECT {_COLUMNS} FROM playlists p",
        where,
        args,
        alias="p",
        limit=limit,
        cursor=cursor,
    )
    return schemas.PlaylistPage(items=rows_as(schemas.Playlist, rows), next_cursor=next_cursor)


async def full(conn: Connection, playlist_id: uuid.UUID) -> schemas.Playlist:
    """The playlist with its collaborators and its tracks in order (read access checked by
    the caller)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM playlists p WHERE p.id = $1", playlist_id)
    if row is None:
        raise playlist_not_found()
    collaborators = await query.fetch(
        conn,
        PlaylistCollaborator.select(PlaylistCollaborator.user_id)
        .where(PlaylistCollaborator.playlist_id == playlist_id)
        .order_by(PlaylistCollaborator.added_at),
    )
    tracks = await query.fetch(
        conn,
        PlaylistTrack.select(
            PlaylistTrack.track_id,
            PlaylistTrack.position,
            PlaylistTrack.track_id.title.as_alias("title"),
            PlaylistTrack.track_id.artist.as_alias("artist"),
            PlaylistTrack.track_id.duration.as_alias("duration"),
            PlaylistTrack.added_by,
            PlaylistTrack.added_at,
        )
        .where(PlaylistTrack.playlist_id == playlist_id)
        .order_by(PlaylistTrack.position, PlaylistTrack.id),
    )
    return row_as(
        schemas.Playlist,
        row,
        extra={
            "collaborators": [r["user_id"] for r in collaborators],
            "tracks": rows_as(schemas.PlaylistTrack, tracks),
        },
    )


# ------------------------------------------------------------------ collaborators and tracks


async def user_exists(conn: Connection, user_id: uuid.UUID) -> bool:
    return bool(await query.fetchval(conn, User.exists().where(User.id == user_id)))


async def track_exists(conn: Connection, track_id: uuid.UUID) -> bool:
    return bool(await query.fetchval(conn, Track.exists().where(Track.id == track_id)))


async def collaborator_count(conn: Connection, playlist_id: uuid.UUID) -> int:
    count: int = await query.fetchval(
        conn,
        PlaylistCollaborator.count().where(PlaylistCollaborator.playlist_id == playlist_id),
    )
    return count


async def add_collaborator(conn: Connection, playlist_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return await query.insert_if_absent(
        conn, "playlist_collaborators", {"playlist_id": playlist_id, "user_id": user_id}
    )


async def remove_collaborator(conn: Connection, playlist_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    removed = await query.fetchval(
        conn,
        PlaylistCollaborator.delete()
        .where(
            (PlaylistCollaborator.playlist_id == playlist_id)
            & (PlaylistCollaborator.user_id == user_id)
        )
        .returning(PlaylistCollaborator.id),
    )
    return removed is not None


async def insert_track(
    conn: Connection,
    playlist_id: uuid.UUID,
    track_id: uuid.UUID,
    position: int,
    added_by: uuid.UUID,
) -> None:
    """Raises ``asyncpg.UniqueViolationError`` when the playlist has the track already."""
    await conn.execute(
        "INSERT INTO playlist_tracks (playlist_id, track_id, position, added_by)"
        " VALUES ($1, $2, $3, $4)",
        playlist_id,
        track_id,
        position,
        added_by,
    )
