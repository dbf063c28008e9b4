"""The per-process rooms machinery: connections, live rooms, ordered delivery, presence.

One ``Hub`` per process. A ``Room`` exists here while it has members on this process: it
keeps the room's state at ``seq`` (the last batch delivered here), the roster of members on
every process, and a writer task while batches wait to be committed (group commit: whatever
queued during one commit goes into the next). Batches reach local members in seq order from
two sources, the local writer and Redis; ``Room.offer`` orders them, drops what was already
delivered and fills gaps from PostgreSQL when pub/sub is late.

Each ``Conn`` has a bounded outgoing queue drained by one writer task; every message is
encoded once per process and the same text queued to every local member. Presence updates
are coalesced per sender in each queue: only the newest unsent one goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from rooms import protocol as p
from rooms import store
from rooms.fanout import Listener, Publisher, pack, unpack
from rooms.kinds import Actor, RoomKind
from rooms.metrics import RoomMetrics
from server.services import Services

logger = logging.getLogger("blendtune.rooms")

GAP_WAIT = 0.2  # how long an out-of-order batch waits for the missing ones before PostgreSQL
RECENT = 64  # batches kept per room for resuming clients without a database read
MAX_GROUP = 256  # batches per group commit
CLOSE_DEADLINE = 10.0  # a client that cannot take the close frame within this is dropped
COMMIT_TIMEOUT = 10.0  # seconds for one group commit
UNAPPLIED_MAX = 64  # remote batches kept unapplied before the state is brought up to date

_batch_decoder = msgspec.json.Decoder(p.Batch)
_member_decoder = msgspec.json.Decoder(p.Member)
_joined_decoder = msgspec.json.Decoder(p.Joined)
_presence_decoder = msgspec.json.Decoder(p.PresenceOut)
_encoder = msgspec.json.Encoder()


class Bucket:
    """A token bucket; refusals beyond the sustained rate add up to a flood."""

    __slots__ = ("excess", "last", "rate", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.excess = 0.0
        self.last = time.monotonic()

    def take(self, now: float) -> bool | None:
        """True: go ahead. False: refused. None: refused, and the client is flooding."""
        elapsed = now - self.last
        self.last = now
        self.tokens = min(self.rate, self.tokens + elapsed * self.rate)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        # Refusals decay at half the rate: a client sending twice the limit floods in ~2 s,
        # one slightly over the limit only sees rate_limited errors.
        self.excess = max(0.0, self.excess - elapsed * self.rate / 2) + 1
        return None if self.excess > self.rate else False


class Conn:
    """One member connection: its identity, outgoing queue and limits."""

    __slots__ = (
        "abort",
        "actor",
        "close_code",
        "close_reason",
        "direct",
        "hub",
        "id",
        "last_seen",
        "max_queue",
        "member",
        "ops_bucket",
        "other_bucket",
        "pinged",
        "presence",
        "probe",
        "queue",
        "room",
        "send",
        "waiter",
        "writer",
    )

    def __init__(
        self,
        hub: Hub,
        send: Callable[[Any], Any],
        abort: Callable[[], None],
        member: p.Member,
        actor: Actor,
    ) -> None:
        self.hub = hub
        self.send = send
        self.abort = abort
        self.member = member
        self.id = member.id
        self.actor = actor
        self.room: Room | None = None
        # Encoded messages (JSON objects, so they start with "{"), and presence slots: a
        # member id standing for the newest presence of that member (in ``presence``), so a
        # newer update replaces one not yet sent without allocating anything.
        self.queue: deque[str] = deque()
        self.presence: dict[str, str] = {}
        self.max_queue = hub.settings.ws_send_queue_max
        self.waiter: asyncio.Future[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.last_seen = time.monotonic()
        self.pinged = False
        rate = float(hub.settings.ws_ops_per_second)
        self.ops_bucket = Bucket(rate)
        self.other_bucket = Bucket(rate)
        self.writer: asyncio.Task[None] | None = None
        self.direct: DirectWriter | None = None
        # (text, published_at) of one message to time until it is handed to the socket.
        self.probe: tuple[str, float] | None = None

    # Outgoing.

    def enqueue(self, text: str) -> None:
        if self.close_code is not None:
            return
        self.queue.append(text)
        self._after_append()

    def enqueue_presence(self, member_id: str, text: str) -> None:
        if self.close_code is not None:
            return
        if member_id in self.presence:
            self.presence[member_id] = text  # replaces the one not yet sent
            return
        self.presence[member_id] = text
        self.queue.append(member_id)
        self._after_append()

    def _after_append(self) -> None:
        if len(self.queue) > self.max_queue:
            self.hub.metrics.slow_consumers.inc()
            self.close(p.Close.RESYNC, "too slow: resync", flush=False)
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self, code: int, reason: str, *, flush: bool = True) -> None:
        """Close once the queued messages are sent (or, with ``flush=False``, dropped)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self.hub.metrics.closes.labels(str(code)).inc()
        if not flush:
            self.queue.clear()
            self.presence.clear()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        asyncio.get_running_loop().call_later(CLOSE_DEADLINE, self._deadline)

    def _deadline(self) -> None:
        if self.writer is not None and not self.writer.done():
            self.abort()

    def _probed(self, text: str) -> None:
        probe = self.probe
        if probe is not None and probe[0] is text:
            self.probe = None
            self.hub.metrics.publish_to_send.observe(max(0.0, time.time() - probe[1]))

    async def run_writer(self) -> None:
        send = self.send
        queue = self.queue
        loop = asyncio.get_running_loop()
        try:
            while True:
                direct = self.direct
                while queue:
                    if direct is not None:
                        await direct.flush(self)
                        continue
                    text = queue.popleft()
                    if text[0] != "{":
                        text = self.presence.pop(text)
                    await send({"type": "websocket.send", "text": text})
                    self._probed(text)
                if self.close_code is not None:
                    await send(
                        {
                            "type": "websocket.close",
                            "code": self.close_code,
                            "reason": self.close_reason,
                        }
                    )
                    return
                self.waiter = loop.create_future()
                await self.waiter
                self.waiter = None
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection is gone; the reader sees the disconnect
            return


class DirectWriter:
    """Writes all queued messages of a connection with one socket write.

    Through ASGI every frame is one ``send`` and one ``write`` syscall; a connection that has
    fallen a little behind (exactly when it matters) has several messages queued, and framing
    them all and writing once is far cheaper. This reaches into uvicorn's sans-I/O websockets
    protocol (the server ``blendtune serve`` runs) and does what its ``send`` does for text
    messages: wait while the transport is paused, frame with the websockets protocol, write.
    ``for_receive`` returns None for any other server, and the ASGI path is used.
    """

    MAX_FRAMES = 64

    __slots__ = ("proto",)

    def __init__(self, proto: Any) -> None:
        self.proto = proto

    @classmethod
    def for_receive(cls, receive: Any) -> DirectWriter | None:
        proto = getattr(receive, "__self__", None)
        try:
            from uvicorn.protocols.websockets.websockets_sansio_impl import (
                WebSocketsSansIOProtocol,
            )
        except ImportError:
            return None
        if type(proto) is not WebSocketsSansIOProtocol:
            return None
        if not all(hasattr(proto, name) for name in ("conn", "transport", "writable")):
            return None
        return cls(proto)

    async def flush(self, conn: Conn) -> None:
        proto = self.proto
        await proto.writable.wait()
        if proto.disconnected or proto.close_sent:
            raise ConnectionError("the connection is closed")
        queue = conn.queue
        presence = conn.presence
        ws = proto.conn
        texts = []
        for _ in range(min(len(queue), self.MAX_FRAMES)):
            text = queue.popleft()
            if text[0] != "{":
                text = presence.pop(text)
            ws.send_text(text.encode())
            texts.append(text)
        proto.transport.write(b"".join(ws.data_to_send()))
        if conn.probe is not None:
            for text in texts:
                conn._probed(text)


class Delivery:
    """One batch on its way to local members."""

    __slots__ = ("ack", "actor", "author", "ops", "published_at", "role", "seq", "text")

    def __init__(
        self,
        seq: int,
        text: str,
        role: str,
        *,
        actor: Actor | None = None,
        ops: bytes | None = None,
        author: Conn | None = None,
        ack: str | None = None,
        published_at: float | None = None,
    ) -> None:
        self.seq = seq
        self.text = text
        self.role = role
        self.actor = actor
        self.ops = ops
        self.author = author
        self.ack = ack
        self.published_at = published_at


class Room:
    """A room with members on this process."""

    def __init__(self, hub: Hub, kind: RoomKind[Any, Any], room_id: uuid.UUID) -> None:
        self.hub = hub
        self.kind = kind
        self.room_id = room_id
        self.channel = hub.services.keys("room", str(room_id))
        self.members_key = hub.services.keys("room", str(room_id), "members")
        self.members: dict[str, Conn] = {}
        self.roster: dict[str, p.Member] = {}
        self.presence_text: dict[str, str] = {}
        self.seq = 0
        self.loaded = False
        self._state: Any = None
        self._unapplied: list[Delivery] = []
        self._state_json: tuple[int, bytes] | None = None
        self.pending: dict[int, Delivery] = {}
        self.recent: deque[tuple[int, str]] = deque(maxlen=RECENT)
        self.queue: list[store.Pending] = []
        self.busy = False  # a group with this room's batches is being committed
        # The authors of the batches being committed, by (user, op id): a catch-up from the
        # log (a gap fill, the periodic check, a join) may deliver such a batch before its
        # commit returns here, and its author must still get an ``ack``, not a ``batch``.
        self.inflight: dict[tuple[uuid.UUID, str], Conn] = {}
        self.activation: asyncio.Task[None] | None = None
        self.gap_task: asyncio.Task[None] | None = None
        self.snapshot_task: asyncio.Task[None] | None = None
        self.gone = False
        self.joining = 0  # members on their way in (activation, resume reads)

    # ---------------------------------------------------------------- state

    def current_state(self) -> Any:
        if self._unapplied:
            decoder = store.ops_decoder(self.kind)
            state = self._state
            try:
                for d in self._unapplied:
                    if d.ops is None:
                        batch = _batch_decoder.decode(d.text)
                        d.ops, d.actor = bytes(batch.ops), Actor(batch.author, d.role)
                    assert d.actor is not None
                    state = self.kind.apply_batch(state, decoder.decode(d.ops), d.actor)
            except Exception as exc:
                # Replicas disagree (a kind that is not deterministic?): trust the database.
                logger.error("room %s: replay failed (%r); reloading", self.room_id, exc)
                self._unapplied.clear()
                self.loaded = False
                self.hub.spawn(self._reload())
                raise
            self._state = state
            self._unapplied.clear()
        return self._state

    def state_json(self) -> bytes:
        state = self.current_state()
        if self._state_json is None or self._state_json[0] != self.seq:
            self._state_json = (self.seq, _encoder.encode(state))
        return self._state_json[1]

    def catch_up(self, entries: Sequence[store.Entry]) -> None:
        for entry in entries:
            if entry.seq > self.seq:
                self.hub.metrics.gap_fills.inc()
                author = self.inflight.pop((entry.author, entry.op_id), None)
                if author is not None and author.room is not self:
                    author = None
                self.offer(
                    Delivery(
                        entry.seq,
                        entry.batch_text(),
                        entry.role,
                        actor=entry.actor,
                        ops=entry.ops,
                        author=author,
                        ack=_ack_text(entry) if author is not None else None,
                    )
                )

    def reset(self, seq: int, state: Any) -> None:
        had_members = self.loaded and bool(self.members)
        self.seq, self._state, self.loaded = seq, state, True
        self._unapplied.clear()
        self.recent.clear()
        for stale in [s for s in self.pending if s <= seq]:
            del self.pending[stale]
        if had_members:
            # The log no longer reaches back to what they saw: they must start over.
            for conn in list(self.members.values()):
                conn.close(p.Close.RESYNC, "history unavailable: resync", flush=False)
        self._drain()

    async def _reload(self) -> None:
        try:
            seq, state = await store.load(self.hub.services.pool, self.kind, self.room_id)
        except store.RoomGone:
            self.vanish()
            return
        self.loaded = True
        self.reset(seq, state)
        for conn in list(self.members.values()):
            conn.close(p.Close.RESYNC, "state reloaded: resync", flush=False)

    # ---------------------------------------------------------------- ordered delivery

    def offer(self, d: Delivery) -> None:
        if d.seq <= self.seq and self.loaded:
            return
        if self.loaded and d.seq == self.seq + 1:
            self._deliver(d)
            self._drain()
            return
        self.pending[d.seq] = d
        if self.loaded and self.gap_task is None:
            self.gap_task = self.hub.spawn(self._fill_gap())

    def _drain(self) -> None:
        pending = self.pending
        while pending:
            d = pending.pop(self.seq + 1, None)
            if d is None:
                break
            self._deliver(d)
        if pending and self.gap_task is None:
            self.gap_task = self.hub.spawn(self._fill_gap())

    def _deliver(self, d: Delivery, *, applied: bool = False) -> None:
        self.seq = d.seq
        if not applied:
            self._unapplied.append(d)
        self.recent.append((d.seq, d.text))
        text = d.text
        author = d.author
        n = 0
        for conn in self.members.values():
            if conn is author:
                assert d.ack is not None
                conn.enqueue(d.ack)
            else:
                conn.enqueue(text)
                n += 1
        self.hub.metrics.count_out("batch", n)
        if d.published_at is not None:
            self._probe(text, d.published_at, author)
        if len(self._unapplied) > UNAPPLIED_MAX:
            with contextlib.suppress(Exception):
                self.current_state()

    async def _fill_gap(self) -> None:
        try:
            await asyncio.sleep(GAP_WAIT)
            while self.pending and self.loaded:
                for stale in [s for s in self.pending if s <= self.seq]:
                    del self.pending[stale]
                if not self.pending:
                    break
                upto = min(self.pending) - 1
                after = self.seq
                if upto <= after:
                    self._drain()
                    continue
                async with self.hub.services.pool.acquire() as conn:
                    entries = await store.fetch_entries(conn, self.room_id, after, upto)
                if self.seq != after:
                    continue  # something arrived meanwhile; look again
                if not store.contiguous(entries, after, upto):
                    await self._reload()
                    return
                self.catch_up(entries)
                self._drain()
        except Exception:
            logger.exception("room %s: filling a gap failed", self.room_id)
        finally:
            self.gap_task = None

    async def refresh(self) -> None:
        """Deliver whatever the database has after ``seq`` (runs as the gap task)."""
        try:
            async with self.hub.services.pool.acquire() as conn:
                entries = await store.fetch_entries(conn, self.room_id, self.seq)
            self.catch_up(entries)
        except Exception:
            logger.exception("room %s: catching up failed", self.room_id)
        finally:
            self.gap_task = None
        if self.pending and self.gap_task is None:
            self.gap_task = self.hub.spawn(self._fill_gap())

    async def missed_since(self, last_seq: int) -> list[str] | None:
        """The batch messages after ``last_seq`` up to ``self.seq``, or None if not kept.

        Returns with no await after the final read, so the caller can register the member
        before anything else is delivered.
        """
        out: list[str] = []
        after = last_seq
        while True:
            if after == self.seq:
                return out
            recent = self.recent
            if recent and recent[0][0] <= after + 1:
                out.extend(text for seq, text in recent if seq > after)
                return out
            upto = self.seq
            async with self.hub.services.pool.acquire() as conn:
                entries = await store.fetch_entries(conn, self.room_id, after, upto)
            if not store.contiguous(entries, after, upto):
                return None
            out.extend(entry.batch_text() for entry in entries)
            after = upto

    # ---------------------------------------------------------------- writes

    def submit(self, pending: store.Pending) -> None:
        self.queue.append(pending)
        if not self.busy:
            self.hub.committer.ready(self)

    @property
    def idle(self) -> bool:
        return not self.busy and not self.queue

    def take(self) -> list[store.Pending]:
        batch, self.queue = self.queue[:MAX_GROUP], self.queue[MAX_GROUP:]
        self.busy = True
        for pending in batch:
            if isinstance(pending.owner, Conn):
                self.inflight[pending.key] = pending.owner
        return batch

    def committed(self, batch: list[store.Pending], outcome: store.Outcome, before: int) -> None:
        """The committer's answer for ``batch``: acknowledge, deliver, publish."""
        self.busy = False
        self.inflight.clear()
        if isinstance(outcome, store.RoomGone):
            for pending in [*batch, *self.queue]:
                _answer_error(pending, "not_found", "the room no longer exists")
            self.queue.clear()
            self.vanish()
        elif isinstance(outcome, BaseException):
            logger.warning("room %s: commit failed: %r", self.room_id, outcome)
            for pending in batch:
                _answer_error(pending, p.UNAVAILABLE, "database unavailable: resend")
        else:
            state, entries = outcome
            self._commit_local(entries, state, batch)
            every = self.hub.settings.room_snapshot_every
            if entries and store.snapshot_due(before, self.seq, every):
                self._snapshot()
        if self.queue:
            self.hub.committer.ready(self)
        elif not self.members:
            self.hub.deactivate(self)

    def _commit_local(
        self, entries: list[store.Entry], state: Any, batch: Sequence[store.Pending]
    ) -> None:
        by_seq = {pending.seq: pending for pending in batch if not pending.duplicate}
        hub = self.hub
        now = time.time()
        for entry in entries:
            pending = by_seq[entry.seq]
            text = entry.batch_text()
            # Publish even if a catch-up from the log got here first: other processes may
            # not have it.
            hub.publisher.publish(self.channel, pack("b", entry.seq, hub.proc_id, entry.role, text))
            if entry.seq <= self.seq:
                # A catch-up from the log (a gap fill, the periodic check, a join) delivered
                # it while the commit was returning, with the ack to its author (inflight).
                continue
            author = pending.owner if isinstance(pending.owner, Conn) else None
            d = Delivery(
                entry.seq,
                text,
                entry.role,
                actor=entry.actor,
                ops=entry.ops,
                author=author,
                ack=_ack_text(entry) if author else None,
                published_at=now,
            )
            assert entry.seq == self.seq + 1, (entry.seq, self.seq)
            self._deliver(d, applied=True)
        if entries:
            if self.seq == entries[-1].seq:
                # ``state`` is the state at seq (whatever a catch-up queued unapplied is ours).
                self._state = state
                self._unapplied.clear()
            self._drain()
        for pending in batch:
            conn = pending.owner
            if not isinstance(conn, Conn):
                continue
            if pending.duplicate:
                assert pending.seq is not None
                conn.enqueue(p.encode(p.Ack(op_id=pending.op_id, seq=pending.seq, duplicate=True)))
            elif pending.rejected is not None:
                hub.metrics.rejected.labels(pending.rejected.code).inc()
                conn.enqueue(
                    p.encode(
                        p.Error(
                            code=pending.rejected.code,
                            detail=pending.rejected.reason,
                            op_id=pending.op_id,
                        )
                    )
                )

    def _snapshot(self) -> None:
        if self.snapshot_task is not None:
            return
        seq, state_json = self.seq, self.state_json()
        settings = self.hub.settings

        async def write() -> None:
            try:
                await store.write_snapshot(
                    self.hub.services.pool,
                    self.room_id,
                    seq,
                    state_json,
                    settings.room_log_retention,
                    settings.room_op_id_hours,
                )
            except Exception:
                logger.exception("room %s: snapshot failed", self.room_id)
            finally:
                self.snapshot_task = None

        self.snapshot_task = self.hub.spawn(write())

    def vanish(self) -> None:
        """The room was deleted: every member is told and closed."""
        self.gone = True
        for conn in list(self.members.values()):
            conn.close(p.Close.NOT_FOUND, "the room was deleted")

    # ---------------------------------------------------------------- presence

    def member_with_state(self, member: p.Member) -> p.Member:
        text = self.presence_text.get(member.id)
        if text is None:
            return member
        return msgspec.structs.replace(member, state=_presence_decoder.decode(text).state)

    def announce_join(self, member: p.Member, text: str, exclude: Conn | None) -> None:
        known = member.id in self.roster
        self.roster[member.id] = member
        if known:
            return  # (read from the registry and then announced: members know it already)
        n = 0
        for conn in self.members.values():
            if conn is not exclude:
                conn.enqueue(text)
                n += 1
        self.hub.metrics.count_out("joined", n)

    def announce_leave(self, member_id: str) -> bool:
        self.presence_text.pop(member_id, None)
        if self.roster.pop(member_id, None) is None:
            return False
        text = p.encode(p.Left(id=member_id))
        for conn in self.members.values():
            conn.enqueue(text)
        self.hub.metrics.count_out("left", len(self.members))
        return True

    def presence(
        self, member_id: str, text: str, exclude: Conn | None, published_at: float
    ) -> None:
        if member_id in self.roster:
            # Kept as sent; decoded only when a welcome lists the members.
            self.presence_text[member_id] = text
        n = 0
        for conn in self.members.values():
            if conn is not exclude:
                conn.enqueue_presence(member_id, text)
                n += 1
        self.hub.metrics.count_out("presence", n)
        self._probe(text, published_at, exclude)

    def _probe(self, text: str, published_at: float, skip: Conn | None) -> None:
        # Time one member's copy from publish to socket (the first one without a probe out).
        for conn in self.members.values():
            if conn is not skip and conn.probe is None:
                conn.probe = (text, published_at)
                return


def _ack_text(entry: store.Entry) -> str:
    return p.encode(p.Ack(op_id=entry.op_id, seq=entry.seq))


def _answer_error(pending: store.Pending, code: str, detail: str) -> None:
    conn = pending.owner
    if isinstance(conn, Conn):
        conn.hub.metrics.rejected.labels(code).inc()
        conn.enqueue(p.encode(p.Error(code=code, detail=detail, op_id=pending.op_id)))


class Committer:
    """Group commit across rooms: one statement carries the queued batches of many rooms.

    A room with queued batches is "ready"; at the end of the event-loop iteration the
    committer takes the batches of every ready room that has no commit in flight and sends
    them in one statement (``store.commit_many``), with up to ``MAX_INFLIGHT`` statements in
    flight. At low load a batch goes out at once, alone; under load each statement (and each
    WAL flush) carries many batches, which is what lets throughput grow with load.
    """

    MAX_INFLIGHT = 4
    MAX_BATCHES = 1024  # per statement

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.ready_rooms: dict[uuid.UUID, Room] = {}
        self.inflight = 0
        self._scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()

    def ready(self, room: Room) -> None:
        self.ready_rooms[room.room_id] = room
        self._idle.clear()
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._launch)

    def _launch(self) -> None:
        self._scheduled = False
        while self.ready_rooms and self.inflight < self.MAX_INFLIGHT:
            work: list[tuple[Room, list[store.Pending], int]] = []
            count = 0
            while self.ready_rooms and count < self.MAX_BATCHES:
                room = self.ready_rooms.pop(next(iter(self.ready_rooms)))
                if room.busy or not room.queue:
                    continue
                batch = room.take()
                work.append((room, batch, room.seq))
                count += len(batch)
            if not work:
                break
            self.inflight += 1
            self.hub.spawn(self._commit(work))
        if not self.inflight and not self.ready_rooms:
            self._idle.set()

    async def _commit(self, work: list[tuple[Room, list[store.Pending], int]]) -> None:
        metrics = self.hub.metrics
        started = time.perf_counter()
        try:
            # A hung database must not hold the rooms forever; a batch whose outcome is
            # unknown is answered "unavailable" and resent by its client with the same op id.
            paths: dict[str, int] = {}
            outcomes = await asyncio.wait_for(
                store.commit_many(
                    self.hub.services.pool, [(room, batch) for room, batch, _ in work], paths
                ),
                COMMIT_TIMEOUT,
            )
            for path, count in paths.items():
                metrics.commit_paths.labels(path).inc(count)
        except Exception as exc:  # unreachable, or unknown outcome: the clients resend
            outcomes = [exc] * len(work)
        finally:
            self.inflight -= 1
        metrics.commit_latency.observe(time.perf_counter() - started)
        metrics.commit_batches.observe(sum(len(batch) for _, batch, _ in work))
        for (room, batch, before), outcome in zip(work, outcomes, strict=True):
            try:
                room.committed(batch, outcome, before)
            except Exception:
                logger.exception("room %s: delivering a commit failed", room.room_id)
        self._launch()

    async def drain(self, within: float) -> None:
        """Wait until everything queued is committed (at shutdown)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within)


class JoinRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Hub:
    """Everything rooms-related in one process."""

    def __init__(self, services: Services, kinds: dict[str, RoomKind[Any, Any]]) -> None:
        self.services = services
        self.settings = services.settings
        self.kinds = kinds
        self.metrics = RoomMetrics(services.metrics.registry)
        self.proc_id = uuid.uuid4().hex[:10]
        self.proc_key = services.keys("proc", self.proc_id)
        # Every id this process has had (its own echoes on pub/sub are ignored under all of
        # them); see ``_reincarnate``.
        self.origins = {self.proc_id}
        # False while a new process id is not yet registered: joins wait for it.
        self.proc_live = True
        self.rooms: dict[uuid.UUID, Room] = {}
        self.by_channel: dict[str, Room] = {}
        self.conns: set[Conn] = set()
        self.closing = False
        self.fanout_ok = True
        self._next_member = 0
        self.orphans: set[tuple[str, str]] = set()
        self._registered = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        assert self.settings.redis_url is not None
        self.publisher = Publisher(services.redis, self._publish_failed)
        self.committer = Committer(self)
        self.listener = Listener(
            self.settings.redis_url,
            services.keys("rooms", "control"),
            self._on_message,
            self._fanout_down,
            self._fanout_up,
        )

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.publisher.start()
        self.listener.start()
        await self.listener.wait_ready(5.0)
        with contextlib.suppress(Exception):
            await self._heartbeat()
        self._loops = [
            asyncio.create_task(self._presence_loop(), name="rooms-presence"),
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
            pipe = self.services.redis.pipeline(transaction=False)
            for room in self.rooms.values():
                for member_id in room.members:
                    pipe.hdel(room.members_key, member_id)
            pipe.delete(self.proc_key)
            await asyncio.wait_for(pipe.execute(), 2)
        await self.publisher.stop()
        await self.listener.stop()
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
            await self.listener.subscribe(room.channel)
            seq, state = await store.load(self.services.pool, room.kind, room.room_id)
            raw = await self.services.redis.hgetall(room.members_key)
            roster = {_text(k): _member_decoder.decode(v) for k, v in raw.items()}
            procs = sorted({member_id.split(".")[0] for member_id in roster})
            alive = await self.services.redis.mget([self.services.keys("proc", x) for x in procs])
            dead = {proc for proc, flag in zip(procs, alive, strict=True) if flag is None}
            dead.discard(self.proc_id)
            for member_id, member in roster.items():
                if member_id.split(".")[0] not in dead:
                    room.roster.setdefault(member_id, member)
            room.loaded = True
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
                raise JoinRefused(p.Close.ROOM_FULL, "the room is full")
            member_json = _encoder.encode(conn.member)
            pipe = self.services.redis.pipeline(transaction=False)
            pipe.hset(room.members_key, conn.id, member_json)
            pipe.expire(room.members_key, 86400)
            registered = True  # (even if the answer is lost, the write may have happened)
            await pipe.execute()
            # A batch may be committed but never published (its process died right after
            # the commit): whoever joins gets everything in the database.
            async with self.services.pool.acquire() as db:
                db_seq = await db.fetchval("SELECT seq FROM rooms WHERE id = $1", room_id)
                if db_seq is None:
                    raise store.RoomGone(str(room_id))
                if db_seq > room.seq:
                    room.catch_up(await store.fetch_entries(db, room_id, room.seq))
            missed: list[str] | None = None
            if last_seq is not None and 0 <= last_seq:
                if last_seq <= room.seq:
                    missed = await room.missed_since(last_seq)
                if missed is not None and len(missed) > self.settings.ws_send_queue_max // 2:
                    missed = None  # more than the send queue should hold: a snapshot is cheaper
            if not conn.id.startswith(self.proc_id + "."):
                # Fan-out was interrupted while this member joined: its id is retired.
                raise JoinRefused(p.Close.TRY_AGAIN_LATER, "fan-out was interrupted: retry")
        except BaseException:
            room.joining -= 1
            if registered:
                self.publisher.command("hdel", room.members_key, conn.id)
            if not room.members and room.idle:
                self.deactivate(room)
            raise
        # No await from here on: the welcome and the stream that follows are consistent.
        room.joining -= 1
        resumed = missed is not None
        room.members[conn.id] = conn
        conn.room = room
        self.conns.add(conn)
        self.metrics.connections.set(len(self.conns))
        members = [room.member_with_state(m) for m in room.roster.values()] + [conn.member]
        conn.enqueue(
            p.encode(
                p.Welcome(
                    v=p.PROTOCOL_VERSION,
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
                    ),
                )
            )
        )
        for text in missed or ():
            conn.enqueue(text)
        self.metrics.count_out("welcome")
        joined = p.encode(p.Joined(member=conn.member))
        room.announce_join(conn.member, joined, exclude=conn)
        self.publisher.publish(room.channel, pack("j", conn.id, self.proc_id, "-", joined))

    def leave(self, conn: Conn) -> None:
        room = conn.room
        if room is None:
            return
        conn.room = None
        self.conns.discard(conn)
        self.metrics.connections.set(len(self.conns))
        room.members.pop(conn.id, None)
        if room.announce_leave(conn.id):
            self.publisher.publish(
                room.channel, pack("l", conn.id, self.proc_id, "-", p.encode(p.Left(id=conn.id)))
            )
        if self.publisher.enabled:
            self.publisher.command("hdel", room.members_key, conn.id)
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
            self.listener.unsubscribe(room.channel)
            self.metrics.active_rooms.set(len(self.rooms))

    # ---------------------------------------------------------------- incoming from clients

    def presence(self, conn: Conn, state: msgspec.Raw) -> None:
        room = conn.room
        if room is None:
            return
        text = p.encode(p.PresenceOut(id=conn.id, state=state))
        room.presence(conn.id, text, exclude=conn, published_at=time.time())
        self.publisher.publish(room.channel, pack("p", conn.id, self.proc_id, "-", text))

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
            room.offer(Delivery(int(env.key), env.payload, env.role, published_at=env.published_at))
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

    async def _recheck(self, room: Room, conn: Conn) -> None:
        """The member's standing changed (removed, new role): ask the kind again."""
        try:
            membership = await room.kind.membership(self.services, room.room_id, conn.actor.user_id)
        except Exception:
            logger.exception("room %s: membership check failed", room.room_id)
            return
        if membership is None:
            conn.close(p.Close.FORBIDDEN, "no longer a member of this room")
        elif membership.role != conn.actor.role:
            # Batches already queued keep the role they were sent with.
            conn.actor = Actor(user_id=conn.actor.user_id, role=membership.role)
            conn.member.role = membership.role

    def _publish_failed(self, exc: Exception, count: int) -> None:
        self.metrics.fanout_errors.inc(count)
        logger.warning("Redis publish failed (%d commands dropped): %r", count, exc)
        # Dropped joins, leaves and roster writes would leave other processes with a wrong
        # roster for good: treat it as the interruption it is, so presence is rebuilt.
        self.listener.interrupt()

    def _fanout_down(self, exc: Exception) -> None:
        self.fanout_ok = False
        self.publisher.enabled = False
        self.publisher.queue.clear()
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
        self.publisher.enabled = True
        orphans, self.orphans = self.orphans, set()
        for key, member_id in orphans:
            self.publisher.command("hdel", key, member_id)
        if not was_down:
            return
        # Whatever was published meanwhile is lost, presence included (joins, leaves, roster
        # writes): start over under a new process id.
        old, self.proc_id = self.proc_id, uuid.uuid4().hex[:10]
        self.proc_key = self.services.keys("proc", self.proc_id)
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
        ttl_ms = int(self.settings.presence_ttl_seconds * 1000)
        delay = 0.05
        while self.proc_id == current and not self.closing:
            try:
                pipe = self.services.redis.pipeline(transaction=False)
                pipe.set(self.proc_key, b"1", px=ttl_ms)
                pipe.delete(self.services.keys("proc", old))
                await pipe.execute()
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
        key = self.proc_key
        ttl_ms = int(self.settings.presence_ttl_seconds * 1000)
        previous = await self.services.redis.set(key, b"1", px=ttl_ms, get=True)
        if previous is None and self._registered and key == self.proc_key:
            # Our key expired (the loop was starved, or Redis lost it): the other processes
            # have forgotten our members. Register and announce them again.
            logger.warning("presence heartbeat lapsed; re-announcing local members")
            pipe = self.services.redis.pipeline(transaction=False)
            for room in self.rooms.values():
                for conn in room.members.values():
                    if conn.close_code is not None:
                        continue
                    pipe.hset(room.members_key, conn.id, _encoder.encode(conn.member))
                    joined = p.encode(p.Joined(member=conn.member))
                    pipe.publish(room.channel, pack("j", conn.id, self.proc_id, "-", joined))
            await pipe.execute()
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
        rows = await self.services.pool.fetch(
            "SELECT id, seq FROM rooms WHERE id = ANY($1::uuid[])", [r.room_id for r in rooms]
        )
        seqs = {row["id"]: row["seq"] for row in rows}
        for room in rooms:
            seq = seqs.get(room.room_id)
            if seq is None:
                room.vanish()  # deleted
            elif seq > room.seq and room.gap_task is None:
                room.gap_task = self.spawn(room.refresh())

    async def _reap(self) -> None:
        """Forget members of processes whose heartbeat key expired (killed processes)."""
        procs: set[str] = set()
        for room in self.rooms.values():
            procs.update(member_id.split(".")[0] for member_id in room.roster)
        procs.discard(self.proc_id)
        if not procs:
            return
        order = sorted(procs)
        alive = await self.services.redis.mget([self.services.keys("proc", x) for x in order])
        dead = {proc for proc, flag in zip(order, alive, strict=True) if flag is None}
        if not dead:
            return
        pipe = self.services.redis.pipeline(transaction=False)
        for room in list(self.rooms.values()):
            for member_id in [m for m in room.roster if m.split(".")[0] in dead]:
                room.announce_leave(member_id)
                pipe.hdel(room.members_key, member_id)
        await pipe.execute()

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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
