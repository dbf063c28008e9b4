"""A room with members on this process: the I/O around its ordering core.

``RoomCore`` (rooms/core.py) decides which batch goes to whom and what to read when pub/sub
is late; ``Room`` performs its actions (queue frames to connections, read the log, reload),
keeps the kind's state at ``seq`` (remote batches are applied lazily), the batches waiting
for the committer, the roster of members on every process and their presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from db.pool import acquire_clean
from rooms import names, store
from rooms import protocol as p
from rooms.conn import Conn
from rooms.core import Action, Batch, Deliver, Fetch, Reload, Resync, RoomCore
from rooms.fanout import pack
from rooms.kinds import Actor, RoomKind

if TYPE_CHECKING:
    from rooms.hub import Hub

logger = logging.getLogger("blendtune.rooms")

MAX_GROUP = 256  # batches per group commit
# Batches waiting for the committer per room (a stalled database): beyond, ``busy``.
ROOM_QUEUE_MAX = 4 * MAX_GROUP
UNAPPLIED_MAX = 64  # remote batches kept unapplied before the state is brought up to date
# Roster changes are announced to version-2 members at most once per tick, in one ``members``
# message: a burst of N joins costs each member N / (rate x tick) messages, not N.
ROSTER_TICK = 0.1

_batch_decoder = msgspec.json.Decoder(p.Batch)
_presence_decoder = msgspec.json.Decoder(p.PresenceOut)
_encoder = msgspec.json.Encoder()
_ops_counter = msgspec.json.Decoder(list[msgspec.Raw])  # (counts a batch's ops)


class Room:
    """A room with members on this process."""

    def __init__(self, hub: Hub, kind: RoomKind[Any, Any], room_id: uuid.UUID) -> None:
        self.hub = hub
        self.kind = kind
        self.room_id = room_id
        self.channel = names.room_channel(hub.ctx.keys, room_id)
        self.members_key = names.room_members(hub.ctx.keys, room_id)
        self.core = RoomCore()
        self.members: dict[str, Conn] = {}
        self.roster: dict[str, p.Member] = {}
        self.presence_text: dict[str, str] = {}
        # Version-1 members (a subset of ``members``): they get ``joined``/``left`` one by one.
        self.legacy: dict[str, Conn] = {}
        # The roster as JSON, for welcomes: each member encoded once (with its presence), the
        # list joined once per change; a join burst costs a memcpy per welcome, not an encode.
        self._member_json: dict[str, bytes] = {}
        self._roster_json: bytes | None = None
        # Member ids whose roster entry changed since the last ``members`` message (insertion
        # ordered; the message carries each one's state at the flush).
        self._changed: dict[str, None] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._flushed_at = float("-inf")
        # Joins read the room's seq from the database; the joins that arrive while one read
        # is running share the next one (``caught_up``).
        self._next_read: asyncio.Future[None] | None = None
        self._reading = False
        self._state: Any = None
        self._unapplied: list[Batch] = []
        self._state_json: tuple[int, bytes] | None = None
        self.queue: list[store.Pending] = []
        self.busy = False  # a group with this room's batches is being committed
        self.activation: asyncio.Task[None] | None = None
        self.snapshot_task: asyncio.Task[None] | None = None
        self.gone = False
        self.joining = 0  # members on their way in (activation, resume reads)

    @property
    def seq(self) -> int:
        return self.core.seq

    @property
    def loaded(self) -> bool:
        return self.core.loaded

    # ---------------------------------------------------------------- state

    def current_state(self) -> Any:
        if self._unapplied:
            decoder = store.ops_decoder(self.kind)
            state = self._state
            try:
                for b in self._unapplied:
                    if b.ops is None:
                        batch = _batch_decoder.decode(b.text)
                        b.ops, b.actor = bytes(batch.ops), Actor(batch.author, b.role)
                    state = self.kind.apply_batch(state, decoder.decode(b.ops), b.actor)
            except Exception as exc:
                # Replicas disagree (a kind that is not deterministic?): trust the database.
                logger.error("room %s: replay failed (%r); reloading", self.room_id, exc)
                self._unapplied.clear()
                self.perform([Reload()])
                raise
            self._state = state
            self._unapplied.clear()
        return self._state

    def state_json(self) -> bytes:
        state = self.current_state()
        if self._state_json is None or self._state_json[0] != self.seq:
            self._state_json = (self.seq, _encoder.encode(state))
        return self._state_json[1]

    # ---------------------------------------------------------------- the core's inputs

    def offer(self, batch: Batch) -> None:
        """A batch from pub/sub."""
        self.perform(self.core.offer(batch))

    def catch_up(self, entries: Sequence[store.Entry]) -> None:
        """Batches read from the log (a join, the locking path): consecutive, maybe known."""
        for entry in entries:
            if entry.seq > self.seq:
                self.hub.metrics.gap_fills.inc()
                self.perform(self.core.offer(entry_batch(entry)))

    def reset(self, seq: int, state: Any, reason: str = "history unavailable: resync") -> None:
        self._state = state
        self._unapplied.clear()
        self.perform(self.core.reset(seq, reason))

    def behind(self, db_seq: int) -> None:
        self.perform(self.core.behind(db_seq))

    # ---------------------------------------------------------------- the core's actions

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if type(action) is Deliver:
                self._deliver(action.batch, action.ack_to)
            elif type(action) is Fetch:
                self.hub.spawn(self._fetch(action))
            elif type(action) is Reload:
                self.hub.spawn(self._reload())
            elif type(action) is Resync:
                for member_id in action.members:
                    conn = self.members.get(member_id)
                    if conn is not None:
                        conn.close(p.Close.RESYNC, action.reason, flush=False)

    def _deliver(self, batch: Batch, ack_to: str | None) -> None:
        self._unapplied.append(batch)
        text = batch.text
        author = self.members.get(ack_to) if ack_to is not None else None
        n = 0
        for conn in self.members.values():
            if conn is author:
                assert batch.key is not None
                conn.enqueue(batch.ack or p.encode(p.Ack(op_id=batch.key[1], seq=batch.seq)))
            else:
                conn.enqueue(text)
                n += 1
        self.hub.metrics.count_out("batch", n)
        if batch.published_at is not None:
            self._probe(text, batch.published_at, author)
        if len(self._unapplied) > UNAPPLIED_MAX:
            with contextlib.suppress(Exception):
                self.current_state()

    async def _fetch(self, fetch: Fetch) -> None:
        try:
            if fetch.delay:
                await asyncio.sleep(fetch.delay)
            async with acquire_clean(self.hub.ctx.pool) as conn:
                entries = await store.fetch_entries(conn, self.room_id, fetch.after, fetch.upto)
        except Exception:
            logger.exception("room %s: reading the log failed", self.room_id)
            self.perform(self.core.fetch_failed())
            return
        self.hub.metrics.gap_fills.inc(len(entries))
        self.perform(self.core.fetched(fetch.after, fetch.upto, [entry_batch(e) for e in entries]))

    async def _reload(self) -> None:
        try:
            seq, state = await store.load(self.hub.ctx.pool, self.kind, self.room_id)
        except store.RoomGone:
            self.vanish()
            return
        except Exception:
            logger.exception("room %s: reloading failed", self.room_id)
            self.perform(self.core.fetch_failed())
            return
        self.reset(seq, state, "state reloaded: resync")

    def caught_up(self) -> asyncio.Future[None]:
        """Done once a read of the database's seq that began after this call has brought the
        room up to it (a batch may be committed but never published, its process killed
        right after the commit). Raises ``store.RoomGone`` if the room was deleted.

        Joins call this; those that arrive while a read runs share the next one, so a burst
        of N joins costs a few reads, not N.
        """
        if self._next_read is None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # (Retrieved even when every waiter was cancelled.)
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._next_read = future
            if not self._reading:
                self.hub.spawn(self._read_seqs())
        return self._next_read

    async def _read_seqs(self) -> None:
        self._reading = True
        try:
            while self._next_read is not None:
                future, self._next_read = self._next_read, None
                try:
                    async with acquire_clean(self.hub.ctx.pool) as db:
                        select = "SELECT seq FROM rooms WHERE id = $1"
                        db_seq = await db.fetchval(select, self.room_id)
                        if db_seq is None:
                            raise store.RoomGone(str(self.room_id))
                        if db_seq > self.seq:
                            self.catch_up(await store.fetch_entries(db, self.room_id, self.seq))
                except asyncio.CancelledError:
                    future.cancel()
                    raise
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(None)
        finally:
            self._reading = False
            if self._next_read is not None:
                self._next_read.cancel()
                self._next_read = None

    async def missed_since(self, last_seq: int) -> list[str] | None:
        """The batch messages after ``last_seq`` up to ``seq``, or None if not kept.

        Returns with no await after the final read, so the caller can register the member
        before anything else is delivered.
        """
        out: list[str] = []
        after = last_seq
        while True:
            kept = self.core.missed_since(after)
            if kept is not None:
                out.extend(b.text for b in kept)
                return out
            upto = self.seq
            async with acquire_clean(self.hub.ctx.pool) as conn:
                entries = await store.fetch_entries(conn, self.room_id, after, upto)
            if not store.contiguous(entries, after, upto):
                return None
            out.extend(entry.batch_text() for entry in entries)
            after = upto

    # ---------------------------------------------------------------- writes

    def submit(self, pending: store.Pending) -> None:
        if isinstance(pending.owner, Conn):
            pending.owner.unanswered += 1
        self.queue.append(pending)
        if not self.busy:
            self.hub.committer.ready(self)

    @property
    def idle(self) -> bool:
        return not self.busy and not self.queue

    def take(self) -> list[store.Pending]:
        batch, self.queue = self.queue[:MAX_GROUP], self.queue[MAX_GROUP:]
        self.busy = True
        self.core.committing(
            [
                (pending.key, pending.owner.id)
                for pending in batch
                if isinstance(pending.owner, Conn)
            ]
        )
        return batch

    def committed(self, batch: list[store.Pending], outcome: store.Outcome, before: int) -> None:
        """The committer's answer for ``batch``: acknowledge, deliver, publish."""
        self.busy = False
        for pending in batch:
            if isinstance(pending.owner, Conn):
                pending.owner.unanswered -= 1
        if isinstance(outcome, store.RoomGone):
            for pending in [*batch, *self.queue]:
                _answer_error(pending, "not_found", "the room no longer exists")
            for pending in self.queue:
                if isinstance(pending.owner, Conn):
                    pending.owner.unanswered -= 1
            self.queue.clear()
            self.vanish()
        elif isinstance(outcome, BaseException):
            self.core.commit_failed()
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
        hub = self.hub
        now = time.time()
        batches = [entry_batch(entry, now) for entry in entries]
        for b in batches:
            # Publish even if a catch-up from the log delivered it here first: other
            # processes may not have it.
            hub.broker.publish(self.channel, pack("b", b.seq, hub.proc_id, b.role, b.text))
        self.perform(self.core.committed(batches))
        if entries and self.seq == entries[-1].seq:
            # ``state`` is the state at seq (whatever a catch-up queued unapplied is ours).
            self._state = state
            self._unapplied.clear()
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
                    self.hub.ctx.pool,
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

    def member_json(self, member: p.Member) -> bytes:
        data = self._member_json.get(member.id)
        if data is None:
            data = self._member_json[member.id] = _encoder.encode(self.member_with_state(member))
        return data

    def roster_changed(self, member_id: str) -> None:
        """Forget the cached JSON of a member (joined, left, new presence or role)."""
        self._member_json.pop(member_id, None)
        self._roster_json = None

    def welcome_members(self, me: p.Member) -> msgspec.Raw:
        """``welcome.members``: everyone in the roster, then ``me`` (not in it yet)."""
        roster = self._roster_json
        if roster is None:
            roster = self._roster_json = b",".join(
                [self.member_json(m) for m in self.roster.values()]
            )
        mine = _encoder.encode(me)
        return msgspec.Raw(b"[" + roster + b"," + mine + b"]" if roster else b"[" + mine + b"]")

    def announce_join(self, member: p.Member, text: str, exclude: Conn | None) -> None:
        known = member.id in self.roster
        self.roster[member.id] = member
        self.roster_changed(member.id)
        if known:
            return  # (read from the registry and then announced: members know it already)
        n = 0
        for conn in self.legacy.values():
            if conn is not exclude:
                conn.enqueue(text)
                n += 1
        self.hub.metrics.count_out("joined", n)
        self._change(member.id)

    def announce_leave(self, member_id: str) -> bool:
        self.presence_text.pop(member_id, None)
        if self.roster.pop(member_id, None) is None:
            return False
        self.roster_changed(member_id)
        if self.legacy:
            text = p.encode(p.Left(id=member_id))
            for conn in self.legacy.values():
                conn.enqueue(text)
            self.hub.metrics.count_out("left", len(self.legacy))
        self._change(member_id)
        return True

    def _change(self, member_id: str) -> None:
        if len(self.members) == len(self.legacy):
            return  # nobody here speaks version 2 (a later welcome lists the roster as it is)
        self._changed[member_id] = None
        if self._flush is None:
            # At once after a quiet tick (the next loop iteration, so that what arrives in
            # one read is one message), else at the end of the tick.
            loop = asyncio.get_running_loop()
            at = max(loop.time(), self._flushed_at + ROSTER_TICK)
            self._flush = loop.call_at(at, self.flush_roster)

    def flush_roster(self) -> None:
        """One ``members`` message with the tick's changes, to every version-2 member."""
        self._flush = None
        self._flushed_at = asyncio.get_running_loop().time()
        changed, self._changed = self._changed, {}
        joined: list[msgspec.Raw] = []
        left: list[str] = []
        for member_id in changed:
            member = self.roster.get(member_id)
            if member is None:
                left.append(member_id)
            else:
                joined.append(msgspec.Raw(self.member_json(member)))
        text = p.encode(p.Members(joined=joined, left=left))
        n = 0
        legacy = self.legacy
        for conn in self.members.values():
            if conn.id not in legacy:
                conn.enqueue(text)
                n += 1
        self.hub.metrics.count_out("members", n)

    def presence(
        self, member_id: str, text: str, exclude: Conn | None, published_at: float
    ) -> None:
        if member_id in self.roster:
            # Kept as sent; decoded only when a welcome lists the members.
            self.presence_text[member_id] = text
            self.roster_changed(member_id)
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


def _answer_error(pending: store.Pending, code: str, detail: str) -> None:
    conn = pending.owner
    if isinstance(conn, Conn):
        conn.hub.metrics.rejected.labels(code).inc()
        conn.enqueue(p.encode(p.Error(code=code, detail=detail, op_id=pending.op_id)))


def entry_batch(entry: store.Entry, published_at: float | None = None) -> Batch:
    """A committed batch on its way to members; a history batch with its author's ack,
    which carries the ops (whoever delivers it first, the request or a catch-up, acks)."""
    ack = None
    if entry.history is not None:
        mark = entry.history
        done = p.HistoryDone(
            action=mark.action,
            target=mark.target,
            applied=len(_ops_counter.decode(entry.ops)),
            skipped=mark.skipped,
        )
        ack = p.encode(
            p.HistoryAck(
                op_id=entry.op_id,
                seq=entry.seq,
                duplicate=False,
                ops=msgspec.Raw(entry.ops),
                history=done,
            )
        )
    return Batch(
        entry.seq,
        entry.batch_text(),
        entry.role,
        key=(entry.author, entry.op_id),
        actor=entry.actor,
        ops=entry.ops,
        published_at=published_at,
        ack=ack,
    )
