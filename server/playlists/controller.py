"""REST endpoints of playlists: /playlists.

Who may do what: the owner does everything; collaborators (only while the playlist is
collaborative) add, remove and move tracks; anyone signed in may read a public playlist.
A private playlist is 404 to everybody else, so its existence does not leak. Positions are
kept contiguous (0..n-1); every track mutation locks the playlist row, so concurrent edits
by collaborators serialise instead of producing duplicate positions.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final, Literal

import asyncpg
import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from server.auth import Principal
from server.catalog.common import (
    CursorParam,
    Limit,
    newest_first,
)
from server.ordering import PLAYLIST_TRACKS
from server.playlists import schemas
from server.problems import Problem
from server.services import Services

MAX_TRACKS: Final = 10_000
MAX_COLLABORATORS: Final = 100

_COLUMNS: Final = """
    p.id, p.user_id AS owner_id, p.name, p.description, p.is_public, p.is_collaborative,
    p.cover_image_url, p.created_at, p.updated_at
"""

Role = Literal["owner", "collaborator", "viewer"]


async def _access(
    conn: Any, playlist_id: uuid.UUID, me: uuid.UUID, *, lock: bool = False
) -> tuple[asyncpg.Record, Role]:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, EXISTS (SELECT 1 FROM playlist_collaborators c"
        "  WHERE c.playlist_id = p.id AND c.user_id = $2) AS collaborating"
        " FROM playlists p WHERE p.id = $1" + (" FOR UPDATE OF p" if lock else ""),
        playlist_id,
        me,
    )
    if row is None:
        raise Problem(404, "not_found", "No such playlist.")
    if row["owner_id"] == me:
        return row, "owner"
    if row["collaborating"]:
        return row, "collaborator"
    if row["is_public"]:
        return row, "viewer"
    raise Problem(404, "not_found", "No such playlist.")


async def _editable(conn: Any, playlist_id: uuid.UUID, me: uuid.UUID) -> asyncpg.Record:
    """Lock the playlist for a track edit by its owner or a collaborator."""
    row, role = await _access(conn, playlist_id, me, lock=True)
    if role == "owner" or (role == "collaborator" and row["is_collaborative"]):
        return row
    raise Problem(403, "forbidden", "Only the owner and collaborators edit this playlist.")


async def _owned(conn: Any, playlist_id: uuid.UUID, me: uuid.UUID) -> asyncpg.Record:
    row, role = await _access(conn, playlist_id, me, lock=True)
    if role != "owner":
        raise Problem(403, "forbidden", "Only the playlist's owner may do this.")
    return row


async def _full(conn: Any, playlist_id: uuid.UUID, me: uuid.UUID) -> schemas.Playlist:
    row, _ = await _access(conn, playlist_id, me)
    playlist = msgspec.convert(
        {
            k: row[k]
            for k in schemas.Playlist.__struct_fields__
            if k not in ("collaborators", "tracks")
        },
        schemas.Playlist,
    )
    playlist.collaborators = [
        r["user_id"]
        for r in await conn.fetch(
            "SELECT user_id FROM playlist_collaborators WHERE playlist_id = $1 ORDER BY added_at",
            playlist_id,
        )
    ]
    rows = await conn.fetch(
        "SELECT pt.track_id, pt.position, t.title, t.artist, t.duration, pt.added_by, pt.added_at"
        " FROM playlist_tracks pt JOIN tracks t ON t.id = pt.track_id"
        " WHERE pt.playlist_id = $1 ORDER BY pt.position, pt.id",
        playlist_id,
    )
    playlist.tracks = [msgspec.convert(dict(r), schemas.PlaylistTrack) for r in rows]
    return playlist


async def _touch(conn: Any, playlist_id: uuid.UUID) -> None:
    await conn.execute("UPDATE playlists SET updated_at = now() WHERE id = $1", playlist_id)


class PlaylistController(Controller):
    path = "/playlists"
    tags = ["playlists"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create_playlist(
        self, services: Services, principal: Principal, data: schemas.PlaylistCreate
    ) -> schemas.Playlist:
        """Create a playlist (private unless is_public)."""
        async with services.pool.acquire() as conn:
            playlist_id = await conn.fetchval(
                "INSERT INTO playlists (user_id, name, description, is_public, is_collaborative,"
                " cover_image_url) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                principal.user_id,
                data.name,
                data.description,
                data.is_public,
                data.is_collaborative,
                data.cover_image_url,
            )
            return await _full(conn, playlist_id, principal.user_id)

    @get("/")
    async def list_playlists(
        self,
        services: Services,
        principal: Principal,
        which: Annotated[
            Literal["mine", "public"],
            Parameter(
                query="scope",
                description="mine: owned or collaborating; public: everyone's public ones.",
            ),
        ] = "mine",
        limit: Limit = 20,
        cursor: CursorParam = None,
    ) -> schemas.PlaylistPage:
        """Playlists, newest first (without their tracks)."""
        args: list[Any] = []
        if which == "mine":
            args.append(principal.user_id)
            where = (
                "(p.user_id = $2 OR EXISTS (SELECT 1 FROM playlist_collaborators c"
                " WHERE c.playlist_id = p.id AND c.user_id = $2))"
            )
        else:
            where = "p.is_public"
        rows, next_cursor = await newest_first(
            services.pool,
            f"SELECT {_COLUMNS} FROM playlists p",
            where,
            args,
            alias="p",
            limit=limit,
            cursor=cursor,
        )
        items = [msgspec.convert(dict(r), schemas.Playlist) for r in rows]
        return schemas.PlaylistPage(items=items, next_cursor=next_cursor)

    @get("/{playlist_id:uuid}")
    async def get_playlist(
        self, services: Services, principal: Principal, playlist_id: uuid.UUID
    ) -> schemas.Playlist:
        """A playlist with its collaborators and tracks in order."""
        async with services.pool.acquire() as conn:
            return await _full(conn, playlist_id, principal.user_id)

    @patch("/{playlist_id:uuid}")
    async def update_playlist(
        self,
        services: Services,
        principal: Principal,
        playlist_id: uuid.UUID,
        data: schemas.PlaylistUpdate,
    ) -> schemas.Playlist:
        """Rename, describe, make public/private or (non-)collaborative (owner)."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await _owned(conn, playlist_id, principal.user_id)
                fields = {
                    k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET
                }
                if fields:
                    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(fields))
                    await conn.execute(
                        f"UPDATE playlists SET {sets}, updated_at = now() WHERE id = $1",
                        playlist_id,
                        *fields.values(),
                    )
            return await _full(conn, playlist_id, principal.user_id)

    @delete("/{playlist_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_playlist(
        self, services: Services, principal: Principal, playlist_id: uuid.UUID
    ) -> None:
        """Delete a playlist (owner)."""
        async with services.pool.acquire() as conn, conn.transaction():
            await _owned(conn, playlist_id, principal.user_id)
            await conn.execute("DELETE FROM playlists WHERE id = $1", playlist_id)

    # ------------------------------------------------------------------ collaborators

    @post("/{playlist_id:uuid}/collaborators", status_code=HTTP_201_CREATED)
    async def add_collaborator(
        self,
        services: Services,
        principal: Principal,
        playlist_id: uuid.UUID,
        data: schemas.CollaboratorAdd,
    ) -> schemas.Playlist:
        """Let another user edit the tracks (owner; the playlist must be collaborative)."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                row = await _owned(conn, playlist_id, principal.user_id)
                if not row["is_collaborative"]:
                    raise Problem(
                        409, "not_collaborative", "Make the playlist collaborative first."
                    )
                if data.user_id == principal.user_id:
                    raise Problem(409, "already_owner", "The owner edits the playlist anyway.")
                if not await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", data.user_id
                ):
                    raise Problem(404, "not_found", "No such user.")
                count = await conn.fetchval(
                    "SELECT count(*) FROM playlist_collaborators WHERE playlist_id = $1",
                    playlist_id,
                )
                if count >= MAX_COLLABORATORS:
                    raise Problem(409, "too_many_collaborators", "The playlist is full.")
                added = await conn.fetchval(
                    "INSERT INTO playlist_collaborators (playlist_id, user_id) VALUES ($1, $2)"
                    " ON CONFLICT (playlist_id, user_id) DO NOTHING RETURNING id",
                    playlist_id,
                    data.user_id,
                )
                if added is None:
                    raise Problem(409, "already_collaborator", "That user already collaborates.")
                await _touch(conn, playlist_id)
            return await _full(conn, playlist_id, principal.user_id)

    @delete("/{playlist_id:uuid}/collaborators/{user_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_collaborator(
        self, services: Services, principal: Principal, playlist_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """Remove a collaborator (owner), or leave a playlist (the collaborator)."""
        async with services.pool.acquire() as conn, conn.transaction():
            _, role = await _access(conn, playlist_id, principal.user_id, lock=True)
            if role != "owner" and user_id != principal.user_id:
                raise Problem(403, "forbidden", "Only the owner removes collaborators.")
            removed = await conn.fetchval(
                "DELETE FROM playlist_collaborators WHERE playlist_id = $1 AND user_id = $2"
                " RETURNING id",
                playlist_id,
                user_id,
            )
            if removed is None:
                raise Problem(404, "not_found", "That user is not a collaborator.")
            await _touch(conn, playlist_id)

    # ------------------------------------------------------------------ tracks

    @post("/{playlist_id:uuid}/tracks", status_code=HTTP_201_CREATED)
    async def add_playlist_track(
        self,
        services: Services,
        principal: Principal,
        playlist_id: uuid.UUID,
        data: schemas.PlaylistTrackAdd,
    ) -> schemas.Playlist:
        """Add a track (at the end, or at position); 409 if it is already there."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await _editable(conn, playlist_id, principal.user_id)
                if not await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM tracks WHERE id = $1)", data.track_id
                ):
                    raise Problem(404, "not_found", "No such track.")
                count = await PLAYLIST_TRACKS.count(conn, playlist_id)
                if count >= MAX_TRACKS:
                    raise Problem(409, "playlist_full", f"At most {MAX_TRACKS} tracks.")
                position = count if data.position is None else min(data.position, count)
                await PLAYLIST_TRACKS.make_room(conn, playlist_id, position)
                try:
                    await conn.execute(
                        "INSERT INTO playlist_tracks (playlist_id, track_id, position, added_by)"
                        " VALUES ($1, $2, $3, $4)",
                        playlist_id,
                        data.track_id,
                        position,
                        principal.user_id,
                    )
                except asyncpg.UniqueViolationError:
                    raise Problem(
                        409, "track_already_in_playlist", "The playlist already has this track."
                    ) from None
                await _touch(conn, playlist_id)
            return await _full(conn, playlist_id, principal.user_id)

    @delete("/{playlist_id:uuid}/tracks/{track_id:uuid}", status_code=200)
    async def remove_playlist_track(
        self, services: Services, principal: Principal, playlist_id: uuid.UUID, track_id: uuid.UUID
    ) -> schemas.Playlist:
        """Remove a track; later tracks move up one place."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await _editable(conn, playlist_id, principal.user_id)
                position = await conn.fetchval(
                    "DELETE FROM playlist_tracks WHERE playlist_id = $1 AND track_id = $2"
                    " RETURNING position",
                    playlist_id,
                    track_id,
                )
                if position is None:
                    raise Problem(404, "not_found", "The track is not in this playlist.")
                await PLAYLIST_TRACKS.close_gap(conn, playlist_id, position)
                await _touch(conn, playlist_id)
            return await _full(conn, playlist_id, principal.user_id)

    @patch("/{playlist_id:uuid}/tracks/{track_id:uuid}")
    async def move_playlist_track(
        self,
        services: Services,
        principal: Principal,
        playlist_id: uuid.UUID,
        track_id: uuid.UUID,
        data: schemas.PlaylistTrackMove,
    ) -> schemas.Playlist:
        """Move a track to another position (the others shift to make room)."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await _editable(conn, playlist_id, principal.user_id)
                moved = await PLAYLIST_TRACKS.move(conn, playlist_id, track_id, data.position)
                if moved is None:
                    raise Problem(404, "not_found", "The track is not in this playlist.")
                if moved:
                    await _touch(conn, playlist_id)
            return await _full(conn, playlist_id, principal.user_id)
