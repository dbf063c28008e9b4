"""The rooms node of one process: live rooms, joins and leaves, fan-out, presence.

One ``Hub`` per process (Centrifuge's node). Where everything else lives:

- ``rooms.asgi``: the WebSocket endpoint; reads client messages and dispatches them.
- ``rooms.conn``: one connection, its bounded outgoing queue and rate limits;
  ``rooms.direct``: the uvicorn fast writer under it.
- ``rooms.room``: a room with members here, performing what ``rooms.core.RoomCore`` (the
  pure ordering state machine) decides.
- ``rooms.committer``: group commit across rooms; ``rooms.store``: the op log in PostgreSQL.
- ``rooms.broker``: the ``Broker`` protocol (pub/sub between processes), with
  ``rooms.fanout.RedisBroker`` and ``rooms.broker.MemoryBroker``.
- this module: joins and leaves, routing what the broker brings to rooms, the presence
  heartbeat and reaper, the idle sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from db.pool import acquire_clean
from rooms import names, store
from rooms import protocol as p
from rooms.broker import Broker
from rooms.committer import Committer
from rooms.conn import Conn, Pumps
from rooms.context import RoomsContext
from rooms.core import Batch
from rooms.fanout import pack, unpack
from rooms.kinds import Actor, RoomKind
from rooms.metrics import RoomMetrics
from rooms.presence import PresenceStore, RedisPresence
from rooms.room import Room
from rooms.sharded import default_broker

logger = logging.getLogger("blendtune.rooms")

_member_decoder = msgspec.json.Decoder(p.Member)
_joined_decoder = msgspec.json.Decoder(p.Joined)
_encoder = msgspec.json.Encoder()


class JoinRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Hub:
    """Everything rooms-related in one process."""

    def __init__(
        self,
        ctx: RoomsContext,
        kinds: dict[str, RoomKind[Any, Any]],
        broker: Broker | None = None,
        presence: PresenceStore | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.kinds = kinds
        self.metrics = RoomMetrics(ctx.registry)
        self.proc_id = uuid.uuid4().hex[:10]
        # Every id this process has had (its own echoes on pub/sub are ignored under all of
        # them); see ``_reincarnate``.
        self.origins = {self.proc_id}
        # False while a new process id is not yet registered: joins wait for it.
        self.proc_live = True
        self.rooms: dict[uuid.UUID, Room] = {}
        # Fan-out envelope types added by other modules (rooms.history_live: "v"): the room
        # and the payload, for each message of that type from another process.
        self.envelope_handlers: dict[str, Callable[[Room, str], None]] = {}
        self.by_channel: dict[str, Room] = {}
        self.conns: set[Conn] = set()
        self.pumps = Pumps()  # connections to write on the next loop iteration
        self.closing = False
        self.fanout_ok = True
        self._next_member = 0
        self.orphans: set[tuple[str, str]] = set()
        self._registered = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.committer = Committer(self)
        # A resume further back than this gets a snapshot (the missed batches would fill
        # more than half the send queue).
        self.resume_max = self.settings.ws_send_queue_max // 2
        self.broker: Broker = broker or default_broker(
            ctx.redis,
            self.settings.redis_url,
            names.control_channel(ctx.keys),
            self.settings.room_publish_queue_max,
        )
        self.broker.bind(self._on_message, self._fanout_down, self._fanout_up, self._publish_failed)
        self.store: PresenceStore = presence or RedisPresence(ctx.redis, ctx.keys, self.broker)
        self.ttl = float(self.settings.presence_ttl_seconds)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.broker.start()
        await self.broker.wait_ready(5.0)
        with contextlib.suppress(Exception):
            await self._heartbeat()
        self._loops = [
            asyncio.create_task(self._presence_loop(), name="rooms-presence"),
            asyncio.create_task(self._seq_loop(), name="rooms-seq-check"),
            asyncio.create_task(self._sweep_loop(), name="rooms-sweeper"),
        ]

    async def stop(self) -> None:
        """Stop accepting, flush queued batches to PostgreSQL, leave Redis tidy."""
        self.closing = True
        for conn in list(self.conns):
            conn.close(p.Close.RESTARTING, "server restarting: reconnect")
        await self.committer.drain(max(1.0, self.settings.shutdown_grace_seconds / 2))
        for task in self._loops:
            task.cancel()
        with contextlib.suppress(Exception):
            members = [(r.members_key, m) for r in self.rooms.values() for m in r.members]
            await asyncio.wait_for(self.store.remove_now(members), 2)
            await asyncio.wait_for(self.store.end(self.proc_id), 1)
        await self.broker.stop()
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---------------------------------------------------------------- joining and leaving

    def new_member_id(self) -> str:
        self._next_member += 1
        return f"{self.proc_id}.{self._next_member}"

    async def _activate(self, room: Room) -> None:
        try:
            await self.broker.subscribe(room.channel)
            seq, state = await store.load(self.ctx.pool, room.kind, room.room_id)
            raw = await self.store.roster(room.members_key)
            roster = {k: _member_decoder.decode(v) for k, v in raw.items()}
            procs = sorted({member_id.split(".")[0] for member_id in roster})
            dead = set(procs) - await self.store.alive(procs)
            dead.discard(self.proc_id)
            for member_id, member in roster.items():
                if member_id.split(".")[0] not in dead:
                    room.roster.setdefault(member_id, member)
                    room.roster_changed(member_id)
            room.reset(seq, state)
        except BaseException:
            self._drop(room)
            raise

    async def join(
        self,
        kind: RoomKind[Any, Any],
        room_id: uuid.UUID,
        conn: Conn,
        last_seq: int | None,
    ) -> None:
        """Make ``conn`` a member and queue its welcome (and missed batches). Raises
        ``JoinRefused``, ``store.RoomGone`` or a service error."""
        if not self.proc_live:
            raise JoinRefused(p.Close.TRY_AGAIN_LATER, "fan-out is being restored: retry")
        room = self.rooms.get(room_id)
        if room is None or room.gone:
            room = Room(self, kind, room_id)
            self.rooms[room_id] = room
            self.by_channel[room.channel] = room
            self.metrics.active_rooms.set(len(self.rooms))
            room.activation = self.spawn(self._activate(room))
        if room.kind is not kind:
            raise JoinRefused(p.Close.NOT_FOUND, "no such room of this kind")
        assert room.activation is not None
        # Keep the room while this member is on its way in.
        room.joining += 1
        registered = False
        try:
            await asyncio.shield(room.activation)
            if len(room.roster) >= self.settings.ws_room_max_members:
                # Ghosts never count against the cap: members of a process that was killed
                # or retired its id (a Redis interruption) may still be listed until the next
                # periodic reap, so reap this room now before refusing.
                await self._reap([room])
                if len(room.roster) >= self.settings.ws_room_max_members:
                    raise JoinRefused(p.Close.ROOM_FULL, "the room is full")
            registered = True  # (even if the answer is lost, the write may have happened)
            await self.store.add([(room.members_key, conn.id, _encoder.encode(conn.member))])
            # A batch may be committed but never published (its process died right after
            # the commit): whoever joins gets everything in the database.
            # (One read serves every member of a join burst that arrived before it began.)
            await asyncio.shield(room.caught_up())
            missed: list[str] | None = None
            # (A negative last_seq, or one ahead of the room, gets a snapshot.)
            if last_seq is not None and 0 <= last_seq <= room.seq:
                # More than the send queue should hold: a snapshot is cheaper (and is not
                # read from the log first).
                if room.seq - last_seq <= self.resume_max:
                    missed = await room.missed_since(last_seq)
                if missed is not None and len(missed) > self.resume_max:
                    missed = None
            if not conn.id.startswith(self.proc_id + "."):
                # Fan-out was interrupted while this member joined: its id is retired.
                raise JoinRefused(p.Close.TRY_AGAIN_LATER, "fan-out was interrupted: retry")
        except BaseException:
            room.joining -= 1
            if registered:
                self.store.remove(room.members_key, conn.id)
            if not room.members and room.idle:
                self.deactivate(room)
            raise
        # No await from here on: the welcome and the stream that follows are consistent.
        room.joining -= 1
        resumed = missed is not None
        room.members[conn.id] = conn
        if conn.version == 1:
            room.legacy[conn.id] = conn
        room.core.join(conn.id)
        conn.room = room
        self.conns.add(conn)
        self.metrics.connections.set(len(self.conns))
        members = room.welcome_members(conn.member)
        conn.enqueue(
            p.encode(
                p.Welcome(
                    v=conn.version,
                    room_id=room_id,
                    kind=kind.name,
                    member_id=conn.id,
                    user_id=conn.actor.user_id,
                    role=conn.actor.role,
                    seq=room.seq,
                    resumed=resumed,
                    state=None if resumed else msgspec.Raw(room.state_json()),
                    members=members,
                    heartbeat_seconds=self.settings.ws_heartbeat_seconds,
                    limits=p.Limits(
                        max_frame_bytes=self.settings.ws_max_frame_bytes,
                        ops_per_second=self.settings.ws_ops_per_second,
                        max_batch_ops=kind.max_batch_ops,
                        presence_max_bytes=self.settings.ws_presence_max_bytes,
                        max_pending_batches=self.settings.ws_max_pending_batches,
                        resume_max_batches=self.resume_max,
                        log_min_batches=self.settings.room_log_retention,
                        log_min_hours=self.settings.room_op_id_hours,
                    ),
                )
            )
        )
        for text in missed or ():
            conn.enqueue(text)
        self.metrics.count_out("welcome")
        joined = p.encode(p.Joined(member=conn.member))
        room.announce_join(conn.member, joined, exclude=conn)
        self.broker.publish(room.channel, pack("j", conn.id, self.proc_id, "-", joined))

    def leave(self, conn: Conn) -> None:
        room = conn.room
        if room is None:
            return
        conn.room = None
        self.conns.discard(conn)
        self.metrics.connections.set(len(self.conns))
        room.members.pop(conn.id, None)
        room.legacy.pop(conn.id, None)
        room.core.leave(conn.id)
        if room.announce_leave(conn.id):
            self.broker.publish(
                room.channel, pack("l", conn.id, self.proc_id, "-", p.encode(p.Left(id=conn.id)))
            )
        if self.broker.enabled:
            self.store.remove(room.members_key, conn.id)
        else:
            self.orphans.add((room.members_key, conn.id))  # removed when Redis is back
        if not room.members and room.idle:
            self.deactivate(room)

    def deactivate(self, room: Room) -> None:
        if (
            not room.idle
            or room.members
            or room.joining
            or self.rooms.get(room.room_id) is not room
        ):
            return
        self._drop(room)

    def _drop(self, room: Room) -> None:
        if self.rooms.get(room.room_id) is room:
            del self.rooms[room.room_id]
            del self.by_channel[room.channel]
            self.broker.unsubscribe(room.channel)
            self.metrics.active_rooms.set(len(self.rooms))

    # ---------------------------------------------------------------- incoming from clients

    def presence(self, conn: Conn, state: msgspec.Raw) -> None:
        room = conn.room
        if room is None:
            return
        text = p.encode(p.PresenceOut(id=conn.id, state=state))
        room.presence(conn.id, text, exclude=conn, published_at=time.time())
        self.broker.publish(room.channel, pack("p", conn.id, self.proc_id, "-", text))

    # ---------------------------------------------------------------- fan-out

    def _on_message(self, channel: str, data: bytes) -> None:
        room = self.by_channel.get(channel)
        if room is None:
            return
        try:
            env = unpack(data)
        except ValueError:
            logger.warning("malformed fan-out message on %s", channel)
            return
        if env.origin in self.origins:
            return  # delivered locally already
        kind = env.type
        if kind == "b":
            room.offer(Batch(int(env.key), env.payload, env.role, published_at=env.published_at))
        elif kind == "p":
            room.presence(env.key, env.payload, exclude=None, published_at=env.published_at)
        elif kind == "j":
            member = _joined_decoder.decode(env.payload).member
            room.announce_join(member, env.payload, exclude=None)
        elif kind == "l":
            room.announce_leave(env.key)
        elif kind == "m":
            for conn in [c for c in room.members.values() if str(c.actor.user_id) == env.key]:
                self.spawn(self._recheck(room, conn))
        elif kind == "x":
            room.vanish()
        elif kind in self.envelope_handlers:
            self.envelope_handlers[kind](room, env.payload)

    async def _recheck(self, room: Room, conn: Conn) -> None:
        """The member's standing changed (removed, new role): ask the kind again."""
        try:
            membership = await room.kind.membership(
                self.ctx.kinds, room.room_id, conn.actor.user_id
            )
        except Exception:
            logger.exception("room %s: membership check failed", room.room_id)
            return
        if membership is None:
            conn.close(p.Close.FORBIDDEN, "no longer a member of this room")
        elif membership.role != conn.actor.role:
            # Batches already queued keep the role they were sent with.
            conn.actor = Actor(user_id=conn.actor.user_id, role=membership.role)
            conn.member.role = membership.role
            room.roster_changed(conn.id)

    def _publish_failed(self, exc: Exception, count: int) -> None:
        self.metrics.fanout_errors.inc(count)
        logger.warning("Redis publish failed (%d commands dropped): %r", count, exc)
        # Dropped joins, leaves and roster writes would leave other processes with a wrong
        # roster for good: treat it as the interruption it is, so presence is rebuilt.
        self.broker.interrupt()

    def _fanout_down(self, exc: Exception) -> None:
        self.fanout_ok = False
        text = p.encode(
            p.Notice(
                code="degraded",
                detail="Fan-out is interrupted: edits are still saved and acknowledged, and "
                "reach members on other servers every few seconds; presence is paused.",
            )
        )
        for conn in list(self.conns):
            conn.enqueue(text)

    def _fanout_up(self, was_down: bool) -> None:
        self.fanout_ok = True
        orphans, self.orphans = self.orphans, set()
        for key, member_id in orphans:
            self.store.remove(key, member_id)
        if not was_down:
            return
        # Whatever was published meanwhile is lost, presence included (joins, leaves, roster
        # writes): start over under a new process id.
        old, self.proc_id = self.proc_id, uuid.uuid4().hex[:10]
        self.origins.add(self.proc_id)
        self.proc_live = False
        self._registered = False
        self.spawn(self._reincarnate(old))

    async def _reincarnate(self, old: str) -> None:
        """Register the new process id, retire the old one, resync every member.

        Every member of the old id is closed (4409) and comes back under the new one; the old
        id's heartbeat key is deleted, so every process (this one included) reaps whatever
        of the old id is left in its rosters and in Redis, exactly as for a killed process,
        whatever joins, leaves or roster writes the interruption swallowed.
        """
        current = self.proc_id
        delay = 0.05
        while self.proc_id == current and not self.closing:
            try:
                await self.store.retire(old, current, self.ttl)
                break
            except Exception as exc:
                logger.debug("registering the new process id failed: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if self.proc_id != current:
            return  # interrupted again; a newer incarnation took over
        self._registered = True
        self.proc_live = True
        for conn in list(self.conns):
            conn.close(p.Close.RESYNC, "fan-out restored: resync")

    # ---------------------------------------------------------------- periodic work

    async def _heartbeat(self) -> None:
        if not self.proc_live:
            return  # _reincarnate registers the new id
        proc = self.proc_id
        was_alive = await self.store.beat(proc, self.ttl)
        if not was_alive and self._registered and proc == self.proc_id:
            # Our key expired (the loop was starved, or Redis lost it): the other processes
            # have forgotten our members. Register and announce them again.
            logger.warning("presence heartbeat lapsed; re-announcing local members")
            live = [
                (room, conn)
                for room in self.rooms.values()
                for conn in room.members.values()
                if conn.close_code is None
            ]
            await self.store.add(
                [(r.members_key, c.id, _encoder.encode(c.member)) for r, c in live]
            )
            for room, conn in live:
                joined = p.encode(p.Joined(member=conn.member))
                self.broker.publish(room.channel, pack("j", conn.id, self.proc_id, "-", joined))
        self._registered = True

    async def _presence_loop(self) -> None:
        interval = presence_interval(self.settings.presence_ttl_seconds)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._heartbeat()
                await self._reap()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("presence heartbeat failed: %r", exc)

    async def _seq_loop(self) -> None:
        # Its own task: a stalled PostgreSQL must not hold up the presence heartbeat (other
        # processes would take our members for dead), nor a stalled Redis this check.
        interval = presence_interval(self.settings.presence_ttl_seconds)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._check_seqs()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("room seq check failed: %r", exc)

    async def _check_seqs(self) -> None:
        """Catch up rooms that are behind the database: the safety net for batches that were
        committed but never published (a process killed between the two, a Redis hiccup)."""
        # (Rooms with a commit in flight catch up by themselves when they need to.)
        rooms = [r for r in self.rooms.values() if r.loaded and not r.gone and not r.busy]
        if not rooms:
            return
        async with acquire_clean(self.ctx.pool) as conn:
            rows = await conn.fetch(
                "SELECT id, seq FROM rooms WHERE id = ANY($1::uuid[])", [r.room_id for r in rooms]
            )
        seqs = {row["id"]: row["seq"] for row in rows}
        for room in rooms:
            seq = seqs.get(room.room_id)
            if seq is None:
                room.vanish()  # deleted
            elif seq > room.seq:
                room.behind(seq)

    async def _reap(self, rooms: Iterable[Room] | None = None) -> None:
        """Forget members of processes whose heartbeat key is gone (killed processes, ids
        retired after an interruption), in ``rooms`` or every active room."""
        rooms = list(self.rooms.values()) if rooms is None else list(rooms)
        procs: set[str] = set()
        for room in rooms:
            procs.update(member_id.split(".")[0] for member_id in room.roster)
        procs.discard(self.proc_id)
        if not procs:
            return
        order = sorted(procs)
        dead = set(order) - await self.store.alive(order)
        if not dead:
            return
        gone: list[tuple[str, str]] = []
        for room in rooms:
            for member_id in [m for m in room.roster if m.split(".")[0] in dead]:
                room.announce_leave(member_id)
                gone.append((room.members_key, member_id))
        await self.store.remove_now(gone)

    async def _sweep_loop(self) -> None:
        settings = self.settings
        interval = max(0.1, min(1.0, settings.ws_heartbeat_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self.conns):
                silent = now - conn.last_seen
                if silent > settings.ws_idle_timeout_seconds:
                    conn.close(p.Close.TIMEOUT, "idle timeout")
                elif silent > settings.ws_heartbeat_seconds and not conn.pinged:
                    conn.pinged = True
                    conn.enqueue(p.PING_TEXT)


def presence_interval(ttl: float) -> float:
    """How often a process refreshes its heartbeat key and reaps dead processes' members.

    A killed process's members are gone from every roster within ``ttl`` (the key expires)
    plus one interval (the next reap): 3 + 0.75 s with the defaults.
    """
    return max(0.1, ttl / 4)
