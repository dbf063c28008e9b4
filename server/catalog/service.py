"""The catalog's rules and transactions (docs/catalog.md).

Artists and admins add tracks; a track's owner (an artist) or an admin changes it; creators'
contact details are shown only to them. Every change of a track and its children is one
transaction with the track row locked, and the creators' splits are checked before the
commit (the deferred trigger checks them again at commit).
"""

from __future__ import annotations

import uuid
from typing import Final

import asyncpg
import msgspec

from server.auth import Principal
from server.catalog import repository as repo
from server.catalog import schemas
from server.problems import Problem
from server.services import Services

EDITOR_ROLES: Final = ("artist", "admin")


def _may_edit(principal: Principal, owner: uuid.UUID | None) -> None:
    if principal.has_role("admin"):
        return
    if owner is None or owner != principal.user_id or not principal.has_role("artist"):
        raise Problem(403, "forbidden", "Only the track's owner or an admin may change it.")


async def search(
    services: Services, query: schemas.TrackQuery, cursor: str | None
) -> schemas.TrackPage:
    async with services.pool.acquire() as conn:
        return await repo.search(conn, query, cursor)


async def read(
    services: Services, principal: Principal, track_id: uuid.UUID
) -> schemas.TrackDetail:
    async with services.pool.acquire() as conn:
        track = await repo.detail(conn, track_id, show_contacts=True)
    if not principal.has_role("admin") and track.created_by != principal.user_id:
        for creator in track.creators:
            creator.contact_email = None
            creator.contact_phone = None
    return track


async def create(
    services: Services, principal: Principal, data: schemas.TrackCreate
) -> schemas.TrackDetail:
    if not principal.has_role(*EDITOR_ROLES):
        raise Problem(403, "forbidden", "Only artists and admins may add tracks.")
    async with services.pool.acquire() as conn:
        try:
            async with conn.transaction():
                track_id = await repo.insert_track(conn, principal.user_id, data)
                await repo.check_splits(conn, track_id)
        except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError) as exc:
            raise repo.integrity_problem(exc) from None
        return await repo.detail(conn, track_id, show_contacts=True)


async def update(
    services: Services, principal: Principal, track_id: uuid.UUID, data: schemas.TrackUpdate
) -> schemas.TrackDetail:
    if data.popularity_score is not msgspec.UNSET and not principal.has_role("admin"):
        raise Problem(403, "forbidden", "Only admins set popularity_score.")
    async with services.pool.acquire() as conn:
        try:
            async with conn.transaction():
                _may_edit(principal, await repo.lock_track(conn, track_id))
                await repo.update_track(conn, track_id, data)
                await repo.check_splits(conn, track_id)
        except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError) as exc:
            raise repo.integrity_problem(exc) from None
        return await repo.detail(conn, track_id, show_contacts=True)


async def delete(services: Services, principal: Principal, track_id: uuid.UUID) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        _may_edit(principal, await repo.lock_track(conn, track_id))
        await repo.delete(conn, track_id)


async def play(services: Services, user_id: uuid.UUID, track_id: uuid.UUID) -> schemas.PlayCount:
    """Count one play: the track's total and the caller's own (a taste source for blends)."""
    async with services.pool.acquire() as conn:
        count = await repo.count_play(conn, user_id, track_id)
    if count is None:
        raise Problem(404, "not_found", "No such track.")
    return schemas.PlayCount(id=track_id, play_count=count)


async def add_child(
    services: Services, principal: Principal, track_id: uuid.UUID, kind: str, item: msgspec.Struct
) -> msgspec.Struct:
    async with services.pool.acquire() as conn:
        try:
            async with conn.transaction():
                _may_edit(principal, await repo.lock_track(conn, track_id))
                (child_id,) = await repo.insert_children(conn, kind, track_id, [item])
                await repo.check_splits(conn, track_id)
                await repo.touch(conn, track_id)
        except asyncpg.CheckViolationError as exc:
            raise repo.integrity_problem(exc) from None
        return await repo.fetch_child(conn, kind, child_id)


async def delete_child(
    services: Services, principal: Principal, track_id: uuid.UUID, kind: str, child_id: uuid.UUID
) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        _may_edit(principal, await repo.lock_track(conn, track_id))
        if not await repo.delete_child(conn, kind, track_id, child_id):
            raise Problem(404, "not_found", f"No such {kind[:-1]} on this track.")
        await repo.touch(conn, track_id)
