"""Telling a mashup's room what changed: server batches through the rooms core.

The database is the source of truth for the mashup's name, members and input tracks; the room
gets them as a ``sync`` server batch after every change, so every member sees them live on
whichever process they are connected to. Each ``sync`` carries the complete picture and its
version (the row's ``updated_at``, which every change sets under the row lock), and the room
ignores a sync older than the one it has, so two concurrent changes can never leave the room
with the older picture. Delivery failures are logged, never raised into the REST request
that caused them (the next change repairs the room).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Final

from rooms import api
from rooms.store import RoomGone
from server.mashups import repository as repo
from server.mashups import room
from server.services import Services

_log = logging.getLogger("blendtune.mashups")

# The kind instance server batches are applied with (kinds are stateless).
MASHUP_ROOM: Final = room.MashupRoom()


async def submit(
    services: Services,
    mashup_id: uuid.UUID,
    ops: Sequence[room.MashupOp],
    *,
    op_id: str | None = None,
) -> int:
    """Submit a server batch; its seq. Raises like ``rooms.api.submit``.

    Give an ``op_id`` to make a retried submission apply once (the first seq is returned).
    """
    return await api.submit(
        services, MASHUP_ROOM, mashup_id, ops, op_id or f"mashup-{uuid.uuid4().hex}"
    )


async def publish_sync(services: Services, mashup_id: uuid.UUID) -> None:
    """Send the mashup's name, members and inputs, as the database has them, to its room."""
    try:
        async with services.pool.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                op = await repo.sync_op(conn, mashup_id)
        # Submitted with the connection released: a request never holds two at once.
        if op is not None:
            await submit(services, mashup_id, [op])
    except RoomGone:
        pass  # deleted meanwhile
    except Exception:
        _log.exception("could not deliver a sync batch to mashup room %s", mashup_id)


async def membership_changed(services: Services, mashup_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """After a role change or removal: open connections of the user re-check their membership
    (closed with 4403 when removed, the new role otherwise)."""
    try:
        await api.membership_changed(services, mashup_id, user_id)
    except Exception as exc:  # they find out on their next edit (the room's member list)
        _log.warning("mashup %s: could not announce a membership change: %r", mashup_id, exc)


async def room_deleted(services: Services, mashup_id: uuid.UUID) -> None:
    """After deleting the mashup: its members are closed with 4404 at once."""
    try:
        await api.room_deleted(services, mashup_id)
    except Exception as exc:  # they find out on their next edit
        _log.warning("mashup %s: could not announce the deletion: %r", mashup_id, exc)


async def read_room(
    services: Services, mashup_id: uuid.UUID
) -> tuple[int, room.MashupRoomState] | None:
    """The room's seq and state, or None when it cannot be read now (logged)."""
    try:
        seq, state = await api.read_state(services, MASHUP_ROOM, mashup_id)
    except RoomGone:
        return None
    except Exception:
        _log.warning("could not read mashup room %s", mashup_id, exc_info=True)
        return None
    assert isinstance(state, room.MashupRoomState)
    return seq, state
