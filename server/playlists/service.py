"""Playlists' rules and transactions (docs/catalog.md, "Playlists").

Who may do what: the owner does everything; collaborators (only while the playlist is
collaborative) add, remove and move tracks; anyone signed in may read a public playlist. A
private playlist is 404 to everybody else. Positions are kept contiguous (0..n-1,
``server/ordering.py``); every change locks the playlist row, so concurrent edits by
collaborators serialise instead of producing duplicate positions.
"""

from __future__ import annotations

import uuid
from typing import Final, Literal

import asyncpg

from db.pool import Connection
from server.ordering import PLAYLIST_TRACKS
from server.playlists import repository as repo
from server.playlists import schemas
from server.problems import Problem
from server.services import Services

MAX_TRACKS: Final = 10_000
MAX_COLLABORATORS: Final = 100


async def _editable(conn: Connection, playlist_id: uuid.UUID, me: uuid.UUID) -> None:
    """Lock the playlist for a track edit by its owner or a collaborator."""
    access, role = await repo.role(conn, playlist_id, me, lock=True)
    if not (role == "owner" or (role == "collaborator" and access.is_collaborative)):
        raise Problem(403, "forbidden", "Only the owner and collaborators edit this playlist.")


async def _owned(conn: Connection, playlist_id: uuid.UUID, me: uuid.UUID) -> repo.Access:
    access, role = await repo.role(conn, playlist_id, me, lock=True)
    if role != "owner":
        raise Problem(403, "forbidden", "Only the playlist's owner may do this.")
    return access


async def _full(conn: Connection, playlist_id: uuid.UUID, me: uuid.UUID) -> schemas.Playlist:
    await repo.role(conn, playlist_id, me)  # 404 unless the caller may read it
    return await repo.full(conn, playlist_id)


async def create(
    services: Services, me: uuid.UUID, data: schemas.PlaylistCreate
) -> schemas.Playlist:
    async with services.pool.acquire() as conn:
        playlist_id = await repo.insert(conn, me, data)
        return await _full(conn, playlist_id, me)


async def page(
    services: Services,
    me: uuid.UUID,
    which: Literal["mine", "public"],
    limit: int,
    cursor: str | None,
) -> schemas.PlaylistPage:
    return await repo.page(services.pool, me, which, limit, cursor)


async def read(services: Services, playlist_id: uuid.UUID, me: uuid.UUID) -> schemas.Playlist:
    async with services.pool.acquire() as conn:
        return await _full(conn, playlist_id, me)


async def update(
    services: Services, playlist_id: uuid.UUID, me: uuid.UUID, data: schemas.PlaylistUpdate
) -> schemas.Playlist:
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await _owned(conn, playlist_id, me)
            await repo.update(conn, playlist_id, data)
        return await _full(conn, playlist_id, me)


async def delete(services: Services, playlist_id: uuid.UUID, me: uuid.UUID) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        await _owned(conn, playlist_id, me)
        await repo.delete(conn, playlist_id)


# ------------------------------------------------------------------ collaborators


async def add_collaborator(
    services: Services, playlist_id: uuid.UUID, me: uuid.UUID, user_id: uuid.UUID
) -> schemas.Playlist:
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            access = await _owned(conn, playlist_id, me)
            if not access.is_collaborative:
                raise Problem(409, "not_collaborative", "Make the playlist collaborative first.")
            if user_id == me:
                raise Problem(409, "already_owner", "The owner edits the playlist anyway.")
            if not await repo.user_exists(conn, user_id):
                raise Problem(404, "not_found", "No such user.")
            if await repo.collaborator_count(conn, playlist_id) >= MAX_COLLABORATORS:
                raise Problem(409, "too_many_collaborators", "The playlist is full.")
            if not await repo.add_collaborator(conn, playlist_id, user_id):
                raise Problem(409, "already_collaborator", "That user already collaborates.")
            await repo.touch(conn, playlist_id)
        return await _full(conn, playlist_id, me)


async def remove_collaborator(
    services: Services, playlist_id: uuid.UUID, me: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Remove a collaborator (the owner), or leave a playlist (the collaborator)."""
    async with services.pool.acquire() as conn, conn.transaction():
        _, role = await repo.role(conn, playlist_id, me, lock=True)
        if role != "owner" and user_id != me:
            raise Problem(403, "forbidden", "Only the owner removes collaborators.")
        if not await repo.remove_collaborator(conn, playlist_id, user_id):
            raise Problem(404, "not_found", "That user is not a collaborator.")
        await repo.touch(conn, playlist_id)


# ------------------------------------------------------------------ tracks


async def add_track(
    services: Services, playlist_id: uuid.UUID, me: uuid.UUID, data: schemas.PlaylistTrackAdd
) -> schemas.Playlist:
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await _editable(conn, playlist_id, me)
            if not await repo.track_exists(conn, data.track_id):
                raise Problem(404, "not_found", "No such track.")
            count = await PLAYLIST_TRACKS.count(conn, playlist_id)
            if count >= MAX_TRACKS:
                raise Problem(409, "playlist_full", f"At most {MAX_TRACKS} tracks.")
            position = count if data.position is None else min(data.position, count)
            await PLAYLIST_TRACKS.make_room(conn, playlist_id, position)
            try:
                await repo.insert_track(conn, playlist_id, data.track_id, position, me)
            except asyncpg.UniqueViolationError:
                raise Problem(
                    409, "track_already_in_playlist", "The playlist already has this track."
                ) from None
            await repo.touch(conn, playlist_id)
        return await _full(conn, playlist_id, me)


async def remove_track(
    services: Services, playlist_id: uuid.UUID, me: uuid.UUID, track_id: uuid.UUID
) -> schemas.Playlist:
    """Remove a track; later tracks move up one place."""
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await _editable(conn, playlist_id, me)
            if not await PLAYLIST_TRACKS.remove(conn, playlist_id, track_id):
                raise Problem(404, "not_found", "The track is not in this playlist.")
            await repo.touch(conn, playlist_id)
        return await _full(conn, playlist_id, me)


async def move_track(
    services: Services, playlist_id: uuid.UUID, me: uuid.UUID, track_id: uuid.UUID, to: int
) -> schemas.Playlist:
    """Move a track to another position (the others shift to make room)."""
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await _editable(conn, playlist_id, me)
            moved = await PLAYLIST_TRACKS.move(conn, playlist_id, track_id, to)
            if moved is None:
                raise Problem(404, "not_found", "The track is not in this playlist.")
            if moved:
                await repo.touch(conn, playlist_id)
        return await _full(conn, playlist_id, me)
