"""The history messages on live connections: ``undo``, ``redo``, ``restore`` and ``version``.

The hub hands each message here (after the rate limit); it runs as a task of its own, at most
one per connection at a time (a second one meanwhile is answered ``rate_limited``), so a
client cannot pile up row-locking transactions. ``rooms.history_store`` computes and commits
the batch under the room's row lock; this module then delivers it exactly as the committer
delivers a client's batch: published to the other processes, offered to the local room (which
orders it and acknowledges the author) and snapshotted when due.

The room is told of the request *before* the commit (``RoomCore.requesting``): once committed,
the batch may reach the room first through a catch-up from the log (another writer of the
room on this process, a gap fill), and whoever delivers it first acknowledges the author with
the history ack, built from the batch itself (``rooms.room.entry_batch``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from rooms import history_store, store
from rooms import protocol as p
from rooms.conn import Conn
from rooms.fanout import pack
from rooms.history import HistoryError
from rooms.hub import Hub
from rooms.room import Room, entry_batch

logger = logging.getLogger("blendtune.rooms")

TIMEOUT = 10.0  # seconds for one history request (it holds the room's row lock)
VERSION_ENVELOPE = "v"  # fan-out envelope type of a version announcement


class HistoryLive:
    """One per hub; receives version announcements from other processes through it."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.running: set[str] = set()  # ids of connections with a request in flight
        hub.envelope_handlers[VERSION_ENVELOPE] = self.announce

    def receive(self, conn: Conn, msg: p.HistoryMessage) -> None:
        if not store.validate_op_id(msg.op_id):
            self._error(conn, p.BAD_MESSAGE, "op_id must be 1 to 64 characters", msg.op_id)
            return
        if conn.id in self.running:
            detail = "one history request at a time: resend it after the answer"
            self._error(conn, p.RATE_LIMITED, detail, msg.op_id)
            return
        self.running.add(conn.id)
        self.hub.spawn(self._run(conn, msg))

    def announce(self, room: Room, text: str) -> None:
        """A version announcement (from this process or another): to every local member."""
        for conn in room.members.values():
            conn.enqueue(text)
        self.hub.metrics.count_out("version", len(room.members))

    async def _run(self, conn: Conn, msg: p.HistoryMessage) -> None:
        room = conn.room
        key = (conn.actor.user_id, msg.op_id)
        try:
            if room is None:
                return
            if isinstance(msg, p.NameVersion):
                await asyncio.wait_for(self._version(conn, room, msg), TIMEOUT)
            else:
                await asyncio.wait_for(self._batch(conn, room, msg), TIMEOUT)
        except HistoryError as exc:
            self._error(conn, exc.code, exc.detail, msg.op_id)
        except store.RoomGone:
            self._error(conn, "not_found", "the room no longer exists", msg.op_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database: nothing was committed
            logger.warning("room history request failed: %r", exc)
            self._error(conn, p.UNAVAILABLE, "database unavailable: resend", msg.op_id)
        finally:
            self.running.discard(conn.id)
            if room is not None:
                room.core.settled(key)

    async def _batch(self, conn: Conn, room: Room, msg: p.Undo | p.Redo | p.Restore) -> None:
        request: history_store.Request
        if isinstance(msg, p.Undo):
            request = history_store.Undo()
        elif isinstance(msg, p.Redo):
            request = history_store.Redo()
        else:
            request = history_store.Restore(version=msg.version, seq=msg.seq)
        hub = self.hub
        room.core.requesting((conn.actor.user_id, msg.op_id), conn.id)
        done = await history_store.perform(
            hub.ctx.pool, room.kind, room.room_id, conn.actor, msg.op_id, request
        )
        if done.duplicate:
            conn.enqueue(p.encode(p.Ack(op_id=msg.op_id, seq=done.seq, duplicate=True)))
            return
        entry, plan = done.entry, done.plan
        assert entry is not None and plan is not None
        batch = entry_batch(entry, time.time())
        hub.broker.publish(room.channel, pack("b", entry.seq, hub.proc_id, entry.role, batch.text))
        settings = hub.settings
        if store.snapshot_due(done.before, entry.seq, settings.room_snapshot_every):
            # Before offering it (a history batch is rare; this makes its snapshot, and the
            # log pruning with it, done when the author hears back, unless another writer's
            # catch-up delivered the batch here meanwhile).
            try:
                await store.write_snapshot(
                    hub.ctx.pool,
                    room.room_id,
                    entry.seq,
                    store.encode_state(plan.state),
                    settings.room_log_retention,
                    settings.room_op_id_hours,
                )
            except Exception:
                logger.exception("room %s: snapshot failed", room.room_id)
        # (Unless a catch-up from the log delivered it here first, and acked the author.)
        room.offer(batch)

    async def _version(self, conn: Conn, room: Room, msg: p.NameVersion) -> None:
        version, duplicate = await history_store.name_version(
            self.hub.ctx.pool,
            room.kind,
            room.room_id,
            conn.actor,
            msg.op_id,
            msg.label,
            msg.seq,
        )
        text = p.encode(
            p.VersionNamed(
                op_id=msg.op_id,
                duplicate=duplicate,
                version=p.VersionInfo(
                    id=version.id,
                    label=version.label,
                    seq=version.seq,
                    author=version.author,
                    created_at=version.created_at,
                ),
            )
        )
        if duplicate:
            conn.enqueue(text)
            return
        self.announce(room, text)
        hub = self.hub
        hub.broker.publish(room.channel, pack(VERSION_ENVELOPE, "-", hub.proc_id, "-", text))

    def _error(self, conn: Conn, code: str, detail: str, op_id: str) -> None:
        self.hub.metrics.rejected.labels(code).inc()
        conn.enqueue(p.encode(p.Error(code=code, detail=detail, op_id=op_id)))
