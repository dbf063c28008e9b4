"""Telling a blend's room what changed: server batches through the rooms core.

The database is the source of truth for membership and the woven playlist; the room gets
them as ordinary server batches (``sync`` and ``woven`` ops), so every member sees them live,
on whichever process they are connected to. Each batch carries the complete member list or
playlist, so a batch lost to an outage is repaired by the next one; delivery failures are
logged, never raised into the REST request that caused them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TypeVar

import msgspec

from rooms import api
from rooms.store import RoomGone
from server.blends import repository as repo
from server.blends import room, schemas
from server.blends.weave import Weave
from server.services import Services

_log = logging.getLogger("blendtune.blends")

# A blend's REST view (summary or detail): both carry the id and the name.
Named = TypeVar("Named", schemas.BlendSummary, schemas.BlendDetail)

# The kind instance server batches are applied with (kinds are stateless).
BLEND_ROOM = room.BlendRoom()


def sync_op(
    default_name: str,
    owner_id: uuid.UUID,
    settings: schemas.BlendSettings,
    members: Sequence[schemas.Member],
    *,
    name: str | None = None,
    generation: int | None = None,
) -> room.Sync:
    return room.Sync(
        name=name,
        default_name=default_name,
        owner_id=owner_id,
        settings=settings,
        members=[
            room.RoomMember(
                user_id=m.user_id,
                username=m.username,
                display_name=m.display_name,
                role="owner" if m.is_owner else "member",
            )
            for m in members
            if m.status == "accepted"
        ],
        generation=generation,
    )


async def submit(services: Services, blend_id: uuid.UUID, ops: list[room.BlendOp]) -> None:
    try:
        await api.submit(services, BLEND_ROOM, blend_id, ops, f"blend-{uuid.uuid4().hex}")
    except RoomGone:
        pass  # the blend was deleted meanwhile
    except Exception:
        _log.exception("could not deliver a server batch to blend room %s", blend_id)


async def publish_sync(services: Services, blend_id: uuid.UUID, *, with_name: bool = False) -> None:
    """Send the blend's settings and members (and, ``with_name``, its name) to its room."""
    async with services.pool.acquire() as conn:
        found = await repo.header(conn, blend_id)
        if found is None:
            return
        members = await repo.members(conn, blend_id)
    name = found.name if with_name else None
    op = sync_op(found.name, found.owner_id, found.settings, members, name=name)
    await submit(services, blend_id, [op])


async def publish_weave(
    services: Services,
    blend_id: uuid.UUID,
    *,
    name: str,
    owner_id: uuid.UUID,
    settings: schemas.BlendSettings,
    members: Sequence[schemas.Member],
    result: Weave,
    generation: int,
) -> None:
    ops: list[room.BlendOp] = [
        sync_op(name, owner_id, settings, members, generation=generation),
        room.woven_op(result, generation),
    ]
    await submit(services, blend_id, ops)


async def with_room_name(services: Services, blend: Named) -> Named:
    """``blend`` with the name it has in its room, read with no connection held.

    Members rename a blend in its room (the ``rename`` op), so the room holds the current
    name and ``blends.name`` the one given over REST (which is also sent to the room). A read
    never writes the room's name back: a GET changes nothing (issue #16), and the room
    answers every read with its own name anyway.
    """
    try:
        _, state = await api.read_state(services, BLEND_ROOM, blend.id)
    except RoomGone:
        return blend
    except Exception:
        # The stored name serves; the room's shows again on a later read.
        _log.warning("could not read blend room %s", blend.id, exc_info=True)
        return blend
    name: str = state.name
    if not name or name == blend.name:
        return blend
    return msgspec.structs.replace(blend, name=name)
