"""Mashups' rules and transactions: what the REST controller and the share-code controller
call (docs/mashups.md documents each rule and code).

Each function is one unit of work: one connection, one transaction over every row the
change touches, let go of before the room is told (``live``) or a room is read (a request
never holds two connections).
"""

from __future__ import annotations

import uuid

import msgspec
from litestar.datastructures import State

from db.pool import Connection
from rooms.store import ensure_room
from server.mashups import live, room, schemas
from server.mashups import repository as repo
from server.mashups.previews import PreviewService
from server.problems import Problem
from server.services import Services, get_services
from server.settings import Settings
from server.share_codes import repository as store
from server.share_codes.controller import Full, share_code_controller

# Bounds on what the room state carries (members and inputs are in every welcome).
MAX_MEMBERS = 50
MAX_INPUTS = 50


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise Problem(400, "invalid_request", "The name must not be blank.")
    return cleaned


def member_not_found() -> Problem:
    return Problem(404, "member_not_found", "That user is not in this mashup.")


async def detail(
    services: Services, mashup_id: uuid.UUID, user_id: uuid.UUID
) -> schemas.MashupDetail:
    async with services.pool.acquire() as conn:
        header = await repo.header(conn, mashup_id, user_id)
        members = await repo.members(conn, mashup_id)
        inputs = await repo.inputs(conn, mashup_id)
    # Read with the connection released: a request never holds two at once.
    found = await live.read_room(services, mashup_id)
    state = found[1] if found else None
    return msgspec.convert(
        {
            **msgspec.structs.asdict(header),
            "members": members,
            "inputs": inputs,
            "seq": found[0] if found else None,
            "timeline": state.timeline if state else None,
            "previews": state.previews if state else [],
            "export": state.export if state else None,
            "generation": state.generation if state else None,
        },
        schemas.MashupDetail,
    )


async def summaries(services: Services, user_id: uuid.UUID) -> list[schemas.MashupSummary]:
    async with services.pool.acquire() as conn:
        return await repo.summaries(conn, user_id)


# ------------------------------------------------------------------ mashups


async def create(
    services: Services, user_id: uuid.UUID, data: schemas.CreateMashup
) -> schemas.MashupDetail:
    name = clean_name(data.name)
    async with services.pool.acquire() as conn, conn.transaction():
        mashup_id = await repo.insert(conn, user_id, name, data.target_duration_seconds)
        await store.issue(conn, "mashups", mashup_id, services.settings.mashup_share_code_days)
        await ensure_room(conn, room.KIND, mashup_id)
    await live.publish_sync(services, mashup_id)
    return await detail(services, mashup_id, user_id)


async def update(
    services: Services, mashup_id: uuid.UUID, user_id: uuid.UUID, data: schemas.UpdateMashup
) -> schemas.MashupDetail:
    name = clean_name(data.name) if data.name is not None else None
    async with services.pool.acquire() as conn, conn.transaction():
        await repo.require_owner(conn, mashup_id, user_id, lock=True)
        await repo.update(conn, mashup_id, name, data.target_duration_seconds)
        await repo.touch(conn, mashup_id)
    await live.publish_sync(services, mashup_id)
    return await detail(services, mashup_id, user_id)


async def delete(
    services: Services, previews: PreviewService, mashup_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    async with services.pool.acquire() as conn:
        await repo.require_owner(conn, mashup_id, user_id)
    # The previews to delete (a preview announced after this read stays behind).
    found = await live.read_room(services, mashup_id)
    async with services.pool.acquire() as conn, conn.transaction():
        await repo.require_owner(conn, mashup_id, user_id, lock=True)
        # The trigger deletes the room (and its log and snapshot) with the row.
        output = await repo.delete(conn, mashup_id)
    await live.room_deleted(services, mashup_id)
    if output:
        await previews.delete_key(output)
    for preview in found[1].previews if found else []:
        await previews.delete(mashup_id, preview.id)


# ------------------------------------------------------------------ members


async def set_role(
    services: Services,
    mashup_id: uuid.UUID,
    owner_id: uuid.UUID,
    user_id: uuid.UUID,
    role: schemas.MemberRole,
) -> schemas.Member:
    async with services.pool.acquire() as conn, conn.transaction():
        await repo.require_owner(conn, mashup_id, owner_id, lock=True)
        if user_id == owner_id:
            raise Problem(409, "owner_role", "The owner's role cannot change.")
        if not await repo.set_role(conn, mashup_id, user_id, role):
            raise member_not_found()
        await repo.touch(conn, mashup_id)
        members = await repo.members(conn, mashup_id)
    await live.publish_sync(services, mashup_id)
    await live.membership_changed(services, mashup_id, user_id)
    return next(m for m in members if m.user_id == user_id)


async def remove_member(
    services: Services, mashup_id: uuid.UUID, by: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Remove a member (the owner), or leave (a member removing themselves); their input
    tracks leave with them, and so do the clips cut from those tracks."""
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.standing(conn, mashup_id, by, lock=True)
        if user_id == by:
            if found.role == "owner":
                raise Problem(
                    409, "owner_cannot_leave", "The owner cannot leave; delete it instead."
                )
        elif found.role != "owner":
            raise Problem(403, "not_owner", "Only the mashup's owner may do this.")
        if not await repo.remove_member(conn, mashup_id, user_id):
            raise member_not_found()
        await repo.touch(conn, mashup_id)
    await live.publish_sync(services, mashup_id)
    await live.membership_changed(services, mashup_id, user_id)


# ------------------------------------------------------------------ input tracks


async def add_input(
    services: Services, mashup_id: uuid.UUID, user_id: uuid.UUID, upload_id: uuid.UUID
) -> schemas.Input:
    async with services.pool.acquire() as conn, conn.transaction():
        await repo.require_editor(conn, mashup_id, user_id, lock=True)
        upload = await repo.own_upload(conn, upload_id, user_id)
        if upload is None:
            raise Problem(404, "track_not_found", "No such upload of yours.")
        if not upload.ready:
            raise Problem(
                409,
                "track_not_ready",
                "The upload is not stored and analysed yet (or it failed).",
            )
        if await repo.input_count(conn, mashup_id) >= MAX_INPUTS:
            raise Problem(
                409, "too_many_inputs", f"A mashup has at most {MAX_INPUTS} input tracks."
            )
        if not await repo.add_input(conn, mashup_id, upload_id):
            raise Problem(409, "already_input", "That track is already an input.")
        await repo.touch(conn, mashup_id)
        items = await repo.inputs(conn, mashup_id)
    await live.publish_sync(services, mashup_id)
    return next(i for i in items if i.uploaded_track_id == upload_id)


async def remove_input(
    services: Services, mashup_id: uuid.UUID, user_id: uuid.UUID, upload_id: uuid.UUID
) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.standing(conn, mashup_id, user_id, lock=True)
        uploader = await repo.input_uploader(conn, mashup_id, upload_id)
        if uploader is None:
            raise Problem(404, "input_not_found", "That track is not an input.")
        if uploader != user_id and found.role != "owner":
            raise Problem(403, "forbidden", "Only the track's uploader or the owner may remove it.")
        await repo.remove_input(conn, mashup_id, upload_id)
        await repo.touch(conn, mashup_id)
    await live.publish_sync(services, mashup_id)


# ------------------------------------------------------------------ previews and exports


async def require_member(services: Services, mashup_id: uuid.UUID, user_id: uuid.UUID) -> None:
    async with services.pool.acquire() as conn:
        await repo.standing(conn, mashup_id, user_id)


async def require_editor(services: Services, mashup_id: uuid.UUID, user_id: uuid.UUID) -> None:
    async with services.pool.acquire() as conn:
        await repo.require_editor(conn, mashup_id, user_id)


async def read_export(
    services: Services, previews: PreviewService, mashup_id: uuid.UUID, user_id: uuid.UUID
) -> bytes:
    """The latest completed export. Reads only: a GET never writes (issue #16), so
    downloads are counted by ``/metrics`` (``blendtune_http_requests_total`` for this route
    and status 200), not in ``mashups.download_count``."""
    async with services.pool.acquire() as conn:
        await repo.standing(conn, mashup_id, user_id)
        key = await repo.output_key(conn, mashup_id)
    data = await previews.read_export(key) if key else None
    if data is None:
        raise Problem(404, "export_not_found", "The mashup has not been exported yet.")
    return data


# ------------------------------------------------------------------ share codes


class MashupShares:
    """Mashups' side of the share-code controller: joining makes an editor (a member keeps
    the role they have)."""

    table: store.Table = "mashups"

    def default_days(self, settings: Settings) -> int:
        return settings.mashup_share_code_days

    async def admit(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        if await repo.member_count(conn, row_id, besides=user_id) >= MAX_MEMBERS:
            raise Full(Problem(409, "mashup_full", f"A mashup has at most {MAX_MEMBERS} members."))
        if not await repo.add_editor(conn, row_id, user_id):
            return False
        await repo.touch(conn, row_id)
        return True

    async def require_owner(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await repo.require_owner(conn, row_id, user_id, lock=True)

    async def announce(self, state: State, row_id: uuid.UUID) -> None:
        await live.publish_sync(get_services(state), row_id)

    async def answer(
        self, services: Services, row_id: uuid.UUID, user_id: uuid.UUID
    ) -> schemas.MashupDetail:
        return await detail(services, row_id, user_id)


ShareCodeController = share_code_controller(MashupShares(), "mashup_id", "join_mashup")
