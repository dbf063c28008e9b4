"""Blends' rules and transactions: what the REST controllers and the share-code controller
call (docs/blends.md documents each rule and code).

Each function is one unit of work: it takes one connection, holds one transaction over every
row the change touches, and lets go of it before telling the room or the weave job (they
take their own connections; a request never holds two).
"""

from __future__ import annotations

import uuid

from litestar.datastructures import State

from db.pool import Connection
from rooms.store import ensure_room
from server.blends import live, room, schemas, taste
from server.blends import repository as repo
from server.blends.crypto import TokenCipher
from server.blends.generation import BlendJobs
from server.blends.weave import merge_songs
from server.problems import Problem
from server.services import Services, get_services
from server.settings import Settings
from server.share_codes import repository as store
from server.share_codes.controller import Full, share_code_controller

PROVIDERS = ("spotify", "apple")
TIME_RANGES = ("short_term", "medium_term", "long_term")


def blend_full(limit: int) -> Problem:
    return Problem(409, "blend_full", f"This blend already has its {limit} members.")


def owner_cannot_leave() -> Problem:
    return Problem(409, "owner_cannot_leave", "The owner cannot leave; delete the blend instead.")


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise Problem(400, "invalid_request", "The name must not be blank.")
    return cleaned


async def changed(
    services: Services, jobs: BlendJobs, blend_id: uuid.UUID, *, with_name: bool = False
) -> None:
    """After a committed change: tell the room, and weave again."""
    await live.publish_sync(services, blend_id, with_name=with_name)
    jobs.kick(blend_id)


# ------------------------------------------------------------------ blends


async def create(
    services: Services, jobs: BlendJobs, user_id: uuid.UUID, data: schemas.CreateBlend
) -> schemas.BlendDetail:
    name = clean_name(data.name)
    async with services.pool.acquire() as conn, conn.transaction():
        blend_id = await repo.insert(conn, user_id, name, data.settings)
        await repo.accept(conn, blend_id, user_id)
        await store.issue(conn, "blends", blend_id, services.settings.blend_share_code_days)
        await ensure_room(conn, room.KIND, blend_id)
        detail = await repo.detail(conn, blend_id, user_id)
    await changed(services, jobs, blend_id, with_name=True)
    return detail


async def summaries(services: Services, user_id: uuid.UUID) -> list[schemas.BlendSummary]:
    async with services.pool.acquire() as conn:
        found = await repo.summaries(conn, user_id)
    return [await live.with_room_name(services, summary) for summary in found]


async def detail(
    services: Services, blend_id: uuid.UUID, user_id: uuid.UUID
) -> schemas.BlendDetail:
    async with services.pool.acquire() as conn:
        found = await repo.detail(conn, blend_id, user_id)
    return await live.with_room_name(services, found)


async def update(
    services: Services,
    jobs: BlendJobs,
    blend_id: uuid.UUID,
    user_id: uuid.UUID,
    data: schemas.UpdateBlend,
) -> schemas.BlendDetail:
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.require_owner(conn, blend_id, user_id, lock=True)
        settings = found.settings
        if data.settings is not None:
            settings = schemas.BlendSettings(
                member_limit=data.settings.member_limit or settings.member_limit,
                playlist_length=data.settings.playlist_length or settings.playlist_length,
            )
            members = await repo.accepted_count(conn, blend_id)
            if settings.member_limit < members:
                raise Problem(
                    409, "member_limit_too_low", f"The blend already has {members} members."
                )
        name = clean_name(data.name) if data.name is not None else None
        await repo.update(conn, blend_id, name, settings)
        if settings.playlist_length != found.settings.playlist_length:
            await repo.mark_pending(conn, blend_id)
        detail = await repo.detail(conn, blend_id, user_id)
    await changed(services, jobs, blend_id, with_name=name is not None)
    return detail


async def delete(services: Services, blend_id: uuid.UUID, user_id: uuid.UUID) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        await repo.require_owner(conn, blend_id, user_id, lock=True)
        await repo.delete(conn, blend_id)


async def regenerate(
    services: Services, jobs: BlendJobs, blend_id: uuid.UUID, user_id: uuid.UUID
) -> schemas.Regeneration:
    async with services.pool.acquire() as conn:
        found = await repo.standing(conn, blend_id, user_id)
        if found.status != "accepted":
            raise repo.blend_not_found()
        await repo.mark_pending(conn, blend_id)
    jobs.kick(blend_id)
    return schemas.Regeneration(blend_id=blend_id, status="pending")


# ------------------------------------------------------------------ members


async def invite(
    services: Services, blend_id: uuid.UUID, owner_id: uuid.UUID, user_id: uuid.UUID
) -> schemas.Member:
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.require_owner(conn, blend_id, owner_id, lock=True)
        if not await repo.user_exists(conn, user_id):
            raise Problem(404, "user_not_found", "No such user.")
        status = await repo.participant_status(conn, blend_id, user_id)
        if status == "accepted":
            raise Problem(409, "already_member", "That user is already a member.")
        if status != "pending":
            if await repo.reserved_count(conn, blend_id) >= found.settings.member_limit:
                raise blend_full(found.settings.member_limit)
            await repo.invite(conn, blend_id, user_id)
        members = await repo.members(conn, blend_id)
    return next(m for m in members if m.user_id == user_id)


async def accept_invite(
    services: Services, jobs: BlendJobs, blend_id: uuid.UUID, user_id: uuid.UUID
) -> schemas.BlendDetail:
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.standing(conn, blend_id, user_id, lock=True)
        if not found.visible:
            raise repo.blend_not_found()
        joined = found.status == "pending"
        if joined:
            if await repo.accepted_count(conn, blend_id) >= found.settings.member_limit:
                raise blend_full(found.settings.member_limit)
            await repo.accept(conn, blend_id, user_id)
            await repo.mark_pending(conn, blend_id)
        detail = await repo.detail(conn, blend_id, user_id)
    if joined:
        await changed(services, jobs, blend_id)
    return detail


async def decline_invite(services: Services, blend_id: uuid.UUID, user_id: uuid.UUID) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.standing(conn, blend_id, user_id)
        if found.status != "pending":
            raise Problem(404, "no_invitation", "You have no pending invitation to it.")
        await repo.decline(conn, blend_id, user_id)


async def leave(
    services: Services, jobs: BlendJobs, blend_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.standing(conn, blend_id, user_id, lock=True)
        if found.status != "accepted":
            raise repo.blend_not_found()
        if found.owner_id == user_id:
            raise owner_cannot_leave()
        await _remove(conn, blend_id, user_id)
    await changed(services, jobs, blend_id)


async def remove_member(
    services: Services,
    jobs: BlendJobs,
    blend_id: uuid.UUID,
    owner_id: uuid.UUID,
    user_id: uuid.UUID,
) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        await repo.require_owner(conn, blend_id, owner_id, lock=True)
        if user_id == owner_id:
            raise owner_cannot_leave()
        if not await _remove(conn, blend_id, user_id):
            raise Problem(404, "member_not_found", "That user is not in this blend.")
    await changed(services, jobs, blend_id)


async def _remove(conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await repo.remove(conn, blend_id, user_id)
    if status == "accepted":
        await repo.mark_pending(conn, blend_id)
    return status is not None


# ------------------------------------------------------------------ share codes


class BlendShares:
    """Blends' side of the share-code controller: joining makes an accepted member."""

    table: store.Table = "blends"

    def default_days(self, settings: Settings) -> int:
        return settings.blend_share_code_days

    async def admit(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        found = await repo.standing(conn, row_id, user_id, lock=True)
        if found.status == "accepted":
            return False
        if await repo.accepted_count(conn, row_id) >= found.settings.member_limit:
            raise Full(blend_full(found.settings.member_limit))
        await repo.accept(conn, row_id, user_id)
        await repo.mark_pending(conn, row_id)
        return True

    async def require_owner(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await repo.require_owner(conn, row_id, user_id, lock=True)

    async def announce(self, state: State, row_id: uuid.UUID) -> None:
        await changed(get_services(state), state.blend_jobs, row_id)

    async def answer(
        self, services: Services, row_id: uuid.UUID, user_id: uuid.UUID
    ) -> schemas.BlendDetail:
        async with services.pool.acquire() as conn:
            return await repo.detail(conn, row_id, user_id)


ShareCodeController = share_code_controller(BlendShares(), "blend_id", "join_blend")


# ------------------------------------------------------------------ taste sources


def provider(name: str) -> str:
    if name not in PROVIDERS:
        raise Problem(404, "unknown_provider", f"Providers are {', '.join(PROVIDERS)}.")
    return name


def time_range(name: str) -> str:
    if name not in TIME_RANGES:
        raise Problem(404, "unknown_time_range", f"Time ranges are {', '.join(TIME_RANGES)}.")
    return name


def not_connected(detail: str = "No such connection.") -> Problem:
    return Problem(404, "not_connected", detail)


async def connections(services: Services, user_id: uuid.UUID) -> list[schemas.Connection]:
    async with services.pool.acquire() as conn:
        return await taste.list_connections(conn, user_id)


async def connect(
    services: Services, user_id: uuid.UUID, name: str, data: schemas.ConnectProvider
) -> schemas.Connection:
    cipher = TokenCipher(services.settings.encryption_key)
    async with services.pool.acquire() as conn:
        return await taste.upsert_connection(conn, cipher, user_id, provider(name), data)


async def disconnect(services: Services, jobs: BlendJobs, user_id: uuid.UUID, name: str) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        if not await taste.delete_connection(conn, user_id, provider(name)):
            raise not_connected()
        blends = await repo.mark_pending_for_member(conn, user_id)
    for blend_id in blends:
        jobs.kick(blend_id)


async def import_top_tracks(
    services: Services,
    jobs: BlendJobs,
    user_id: uuid.UUID,
    name: str,
    period: str,
    data: schemas.ImportTopTracks,
) -> list[schemas.TopTrack]:
    async with services.pool.acquire() as conn, conn.transaction():
        connection = await taste.connection_id(conn, user_id, provider(name))
        if connection is None:
            raise not_connected(f"Connect {name} first.")
        await taste.replace_top_tracks(conn, connection, time_range(period), data.tracks)
        blends = await repo.mark_pending_for_member(conn, user_id)
        tracks = await taste.top_tracks(conn, connection, period)
    for blend_id in blends:
        jobs.kick(blend_id)
    return tracks


async def top_tracks(
    services: Services, user_id: uuid.UUID, name: str, period: str
) -> list[schemas.TopTrack]:
    async with services.pool.acquire() as conn:
        connection = await taste.connection_id(conn, user_id, provider(name))
        if connection is None:
            raise not_connected(f"Connect {name} first.")
        return await taste.top_tracks(conn, connection, time_range(period))


async def my_taste(services: Services, user_id: uuid.UUID) -> list[schemas.TasteTrack]:
    """The caller's taste as blends see it: merged songs, best-loved first."""
    async with services.pool.acquire() as conn:
        (mine,) = await taste.load_tastes(conn, [user_id])
    songs = merge_songs([mine])
    songs.sort(key=lambda s: (-s.scores[0], s.key))
    return [
        schemas.TasteTrack(
            key=s.key,
            track_id=s.by_member[0].track_id,
            name=s.by_member[0].name,
            artist=s.by_member[0].artist,
            source=s.by_member[0].source,
            score=round(s.scores[0], 4),
        )
        for s in songs
    ]
