"""Room operations for server-side code: submit a batch as the server, read a room's state.

Usable from any process with the app's services (a request handler, a background job; the
type is ``rooms.context.ApiContext``, which ``server.services.Services`` satisfies): the batch is
sequenced under the room's row lock like a client's, made durable, and published, so
members on every process receive it as an ordinary ``batch`` message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from rooms import names, store
from rooms.context import ApiContext, KindContext
from rooms.fanout import pack
from rooms.kinds import SERVER_ACTOR, Actor, RoomKind
from rooms.sharded import publish

logger = logging.getLogger("blendtune.rooms")

# The origin of batches published outside a hub, so every hub (this process's too) delivers it.
API_ORIGIN = "api"


async def submit(
    services: ApiContext,
    kind: RoomKind[Any, Any],
    room_id: uuid.UUID,
    ops: Sequence[Any],
    op_id: str,
    *,
    actor: Actor = SERVER_ACTOR,
) -> int:
    """Apply ``ops`` (the kind's op Structs) to the room as one batch; return its seq.

    Idempotent by ``op_id`` (per actor): submitting the same op id again returns the seq the
    batch got the first time and changes nothing. Raises ``rooms.kinds.OpRejected`` when the
    kind rejects the batch, ``rooms.store.RoomGone`` when the kind says the room does not
    exist (or the id belongs to a room of another kind), and database errors as they come
    (nothing was applied then).
    """
    if not store.validate_op_id(op_id):
        raise ValueError("op_id must be 1 to 64 characters")
    ops = list(ops)
    pool = services.pool
    if not await kind.exists(services, room_id) or not await store.ensure_room(
        pool, kind.name, room_id
    ):
        raise store.RoomGone(str(room_id))
    replica = store.Detached(kind, room_id)
    pending = store.Pending(actor, op_id, ops, store.encode_ops(ops))
    before = await pool.fetchval("SELECT seq FROM rooms WHERE id = $1", room_id)
    state, entries = await store.commit(pool, replica, [pending])
    if pending.rejected is not None:
        raise pending.rejected
    assert pending.seq is not None
    channel = names.room_channel(services.keys, room_id)
    for entry in entries:
        try:
            await publish(
                services.redis,
                channel,
                pack("b", entry.seq, API_ORIGIN, entry.role, entry.batch_text()),
            )
        except Exception as exc:  # durable already; members catch up on their next batch
            logger.warning("room %s: publish failed: %r", room_id, exc)
    settings = services.settings
    if entries and store.snapshot_due(before or 0, entries[-1].seq, settings.room_snapshot_every):
        await store.write_snapshot(
            pool,
            room_id,
            entries[-1].seq,
            store.encode_state(state),
            settings.room_log_retention,
            settings.room_op_id_hours,
        )
    return pending.seq


async def read_state(
    services: KindContext, kind: RoomKind[Any, Any], room_id: uuid.UUID
) -> tuple[int, Any]:
    """The room's current seq and state (from PostgreSQL). Raises ``RoomGone``."""
    return await store.load(services.pool, kind, room_id)


async def membership_changed(services: KindContext, room_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Tell every process that ``user_id``'s membership of the room changed.

    Call it after removing a member or changing their role (after the commit): their open
    connections ask the kind's ``membership`` again and are closed with 4403 when it says
    None, or carry on with the new role. Raises if Redis is unreachable.
    """
    channel = names.room_channel(services.keys, room_id)
    await publish(services.redis, channel, pack("m", str(user_id), API_ORIGIN, "-", ""))


async def room_deleted(services: KindContext, room_id: uuid.UUID) -> None:
    """Tell every process the room is gone: its members are closed with 4404 at once.

    (Without it they find out on their next edit.) Raises if Redis is unreachable.
    """
    channel = names.room_channel(services.keys, room_id)
    await publish(services.redis, channel, pack("x", "-", API_ORIGIN, "-", ""))
