"""Releases' rules and transactions (docs/catalog.md, "Releases").

Only artists create releases and only drafts are edited; the lifecycle itself is data
(``lifecycle.py``). Every change locks the release row for its transaction.
"""

from __future__ import annotations

import uuid
from typing import Final, Literal

import asyncpg

from db.pool import Connection
from server.auth import Principal
from server.ordering import RELEASE_TRACKS
from server.problems import Problem
from server.releases import lifecycle, schemas
from server.releases import repository as repo
from server.services import Services

MAX_TRACKS: Final = 100


async def _own(
    conn: Connection, principal: Principal, release_id: uuid.UUID, *, editable: bool = True
) -> schemas.Release:
    """Lock the caller's own release; 404 if not visible, 403 if visible but not theirs,
    409 if ``editable`` and it is not a draft."""
    release = await repo.visible(
        conn, release_id, principal.user_id, principal.has_role("admin"), lock=True
    )
    if release.artist_id != principal.user_id:
        raise Problem(403, "forbidden", "Only the release's artist may change it.")
    if editable and release.status not in lifecycle.EDITABLE:
        raise Problem(
            409,
            "release_locked",
            f"The release is {release.status.replace('_', ' ')}; only drafts can be edited.",
        )
    return release


async def _fresh(conn: Connection, principal: Principal, release_id: uuid.UUID) -> schemas.Release:
    release = await repo.visible(conn, release_id, principal.user_id, principal.has_role("admin"))
    return await repo.with_tracks(conn, release)


async def create(
    services: Services, principal: Principal, data: schemas.ReleaseCreate
) -> schemas.Release:
    if not principal.has_role("artist"):
        raise Problem(403, "forbidden", "Only artists create releases.")
    async with services.pool.acquire() as conn:
        return await repo.insert(conn, principal.user_id, data)


async def page(
    services: Services,
    principal: Principal,
    which: Literal["mine", "published", "review"],
    limit: int,
    cursor: str | None,
) -> schemas.ReleasePage:
    if which == "review" and not principal.has_role("admin"):
        raise Problem(403, "forbidden", "The review queue is for admins.")
    return await repo.page(services.pool, which, principal.user_id, limit, cursor)


async def read(services: Services, principal: Principal, release_id: uuid.UUID) -> schemas.Release:
    async with services.pool.acquire() as conn:
        return await _fresh(conn, principal, release_id)


async def update(
    services: Services, principal: Principal, release_id: uuid.UUID, data: schemas.ReleaseUpdate
) -> schemas.Release:
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await _own(conn, principal, release_id)
            await repo.update(conn, release_id, data)
        return await _fresh(conn, principal, release_id)


async def delete(services: Services, principal: Principal, release_id: uuid.UUID) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        release = await _own(conn, principal, release_id, editable=False)
        if release.status not in ("draft", "rejected"):
            raise Problem(409, "release_locked", "Only draft or rejected releases can be deleted.")
        await repo.delete(conn, release_id)


# ------------------------------------------------------------------ tracks


async def add_track(
    services: Services,
    principal: Principal,
    release_id: uuid.UUID,
    data: schemas.ReleaseTrackCreate,
) -> schemas.Release:
    """Add a track to a draft; 409 track_order_taken if that number is used."""
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await _own(conn, principal, release_id)
            counted = await repo.track_count(conn, release_id)
            if counted.count >= MAX_TRACKS:
                raise Problem(409, "too_many_tracks", f"At most {MAX_TRACKS} tracks.")
            duration = data.duration_seconds
            if data.upload_id is not None:
                owned, analysed = await repo.own_upload_duration(
                    conn, data.upload_id, principal.user_id
                )
                if not owned:
                    raise Problem(404, "not_found", "No such upload.")
                duration = duration or analysed
            if not duration:
                raise Problem(
                    400, "invalid_request", "Give duration_seconds or an analysed upload_id."
                )
            order = data.track_order or counted.last + 1
            if order > 1000:
                raise Problem(409, "too_many_tracks", "Track numbers stop at 1000.")
            try:
                await repo.insert_track(conn, release_id, data, duration, order)
            except asyncpg.UniqueViolationError:
                raise Problem(
                    409, "track_order_taken", f"The release already has a track {order}."
                ) from None
            await repo.touch(conn, release_id)
        return await _fresh(conn, principal, release_id)


async def remove_track(
    services: Services, principal: Principal, release_id: uuid.UUID, track_id: uuid.UUID
) -> schemas.Release:
    """Remove a track from a draft; later tracks move up one place."""
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await _own(conn, principal, release_id)
            if not await RELEASE_TRACKS.remove(conn, release_id, track_id):
                raise Problem(404, "not_found", "No such track on this release.")
        return await _fresh(conn, principal, release_id)


async def reorder(
    services: Services, principal: Principal, release_id: uuid.UUID, order: list[uuid.UUID]
) -> schemas.Release:
    """Set the order of all tracks of a draft (numbers become 1..n)."""
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await _own(conn, principal, release_id)
            if len(order) != len(set(order)) or set(order) != await repo.track_ids(
                conn, release_id
            ):
                raise Problem(409, "invalid_order", "List every track of the release exactly once.")
            await RELEASE_TRACKS.renumber(conn, release_id, order)
            await repo.touch(conn, release_id)
        return await _fresh(conn, principal, release_id)


# ------------------------------------------------------------------ lifecycle


async def transition(
    services: Services,
    principal: Principal,
    release_id: uuid.UUID,
    action: lifecycle.Action,
    reason: str | None = None,
) -> schemas.Release:
    is_admin = principal.has_role("admin")
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            release = await repo.visible(conn, release_id, principal.user_id, is_admin, lock=True)
            if action in lifecycle.ADMIN_ACTIONS:
                if not is_admin:
                    raise Problem(403, "forbidden", "Only admins review releases.")
            elif release.artist_id != principal.user_id:
                raise Problem(403, "forbidden", "Only the release's artist may do this.")
            try:
                target = lifecycle.next_status(release.status, action)
            except lifecycle.InvalidTransition as exc:
                raise Problem(409, "invalid_transition", str(exc)) from None
            if action == "submit":
                target = await _submission(conn, release)
            reviewer = principal.user_id if action in lifecycle.ADMIN_ACTIONS else None
            await repo.set_status(conn, release_id, target, reviewed_by=reviewer, reason=reason)
        return await _fresh(conn, principal, release_id)


async def _submission(conn: Connection, release: schemas.Release) -> lifecycle.Status:
    """Where a submitted release goes: review, or processing while an upload is analysed;
    409 when it is incomplete or an upload failed."""
    ready = await repo.readiness(conn, release.id)
    missing = []
    if ready.tracks == 0:
        missing.append("at least one track")
    if not release.cover_art_url:
        missing.append("cover art")
    if missing:
        raise Problem(
            409, "release_incomplete", f"A release needs {' and '.join(missing)} before review."
        )
    if ready.failed:
        raise Problem(409, "upload_failed", "A track's upload failed; retry or replace it.")
    return "processing" if ready.waiting else "pending_review"
