"""The ordering core of one room on one process: a state machine with no I/O.

In the manner of python-websockets' sans-I/O protocol: no awaits, no tasks, no database, no
clock. The room adapter (``rooms.room.Room``) feeds it what happened (a batch from pub/sub or
the log, a commit's outcome, a fetch result, a reload, a member joining or leaving) and
performs the actions it returns, in order and before feeding it anything else:

- ``Deliver(batch, ack_to)``: send ``batch`` to every member, except that ``ack_to`` (the
  connection that sent it, if it is still here) gets the ``ack`` in its place (``batch.ack``
  when the batch has one of its own: a history batch's carries its ops).
- ``Fetch(after, upto, delay)``: after ``delay`` seconds, read the log after ``after`` (up to
  ``upto``, or all of it) and call ``fetched`` (or ``fetch_failed``).
- ``Reload()``: the log no longer reaches back to ``seq``: read the snapshot and the log and
  call ``reset``.
- ``Resync(members)``: close these members with 4409; they resume from their last seq.

What it promises, checked by ``tests/rooms/test_core.py`` with random interleavings: every
member receives the batches after its join, in seq order, with no gap and none twice, the
same batch at the same seq as every other member and as the log; the connection that sent a
batch gets the ack for it, never the batch.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

ConnId = str  # a member id
Key = tuple[uuid.UUID, str]  # (author user id, op id): a batch's identity in the log

GAP_WAIT = 0.2  # how long an out-of-order batch waits for the missing ones before the log
RECENT = 64  # batches kept for resuming members without a database read


@dataclass(slots=True)
class Batch:
    """One sequenced batch on its way to members: the exact text they receive, and what the
    room needs to apply it (``actor`` and ``ops``, decoded lazily for pub/sub batches)."""

    seq: int
    text: str
    role: str
    key: Key | None = None  # known for batches from the log and from our own commits
    actor: Any = None
    ops: bytes | None = None
    published_at: float | None = None
    ack: str | None = None  # the author's ack, when not a plain ``ack`` (history batches)


class Deliver(msgspec.Struct, frozen=True):
    batch: Batch
    ack_to: ConnId | None


class Fetch(msgspec.Struct, frozen=True):
    after: int
    upto: int | None
    delay: float


class Reload(msgspec.Struct, frozen=True):
    pass


class Resync(msgspec.Struct, frozen=True):
    members: tuple[ConnId, ...]
    reason: str


Action = Deliver | Fetch | Reload | Resync


class RoomCore:
    """Which batch goes to whom, when, and what to read to fill a gap."""

    __slots__ = (
        "fetching",
        "gap_wait",
        "inflight",
        "loaded",
        "members",
        "pending",
        "recent",
        "requested",
        "seq",
    )

    def __init__(self, *, gap_wait: float = GAP_WAIT, recent: int = RECENT) -> None:
        self.seq = 0  # the last batch delivered here
        self.loaded = False  # seq is known (the room was read from the database)
        self.members: set[ConnId] = set()
        # Early batches (and whom to ack for them), waiting for the ones before.
        self.pending: dict[int, tuple[Batch, ConnId | None]] = {}
        # The senders of batches being committed: whoever delivers such a batch first (the
        # commit, or a catch-up from the log) acks its sender.
        self.inflight: dict[Key, ConnId] = {}
        # The same for batches the room's writer does not commit (history requests: their
        # batch is committed by the request itself, and may come back through a catch-up
        # from the log before the request is done): kept until delivered or ``settled``.
        self.requested: dict[Key, ConnId] = {}
        self.fetching = False  # a Fetch is outstanding
        self.gap_wait = gap_wait
        self.recent: deque[Batch] = deque(maxlen=recent)

    # ------------------------------------------------------------------ inputs

    def reset(self, seq: int, reason: str = "history unavailable: resync") -> list[Action]:
        """The room's state was (re)read from the database at ``seq``."""
        actions: list[Action] = []
        if self.loaded and self.members:
            # Whatever they saw may not lead to ``seq`` without a gap: they start over.
            actions.append(Resync(tuple(self.members), reason))
            self.members.clear()
        self.seq, self.loaded = seq, True
        self.recent.clear()
        self.fetching = False
        for stale in [s for s in self.pending if s <= seq]:
            del self.pending[stale]
        self._drain(actions)
        return actions

    def offer(self, batch: Batch) -> list[Action]:
        """A batch from pub/sub (any order, maybe twice, maybe never) or from the log."""
        actions: list[Action] = []
        self._offer(batch, actions)
        return actions

    def committing(self, senders: Sequence[tuple[Key, ConnId]]) -> None:
        """These members' batches are being committed."""
        self.inflight.update(senders)

    def requesting(self, key: Key, sender: ConnId) -> None:
        """``sender``'s request will commit the batch ``key`` (any moment from now)."""
        self.requested[key] = sender

    def settled(self, key: Key) -> None:
        """The request for ``key`` is over (its batch was offered here, or never committed)."""
        self.requested.pop(key, None)

    def committed(self, batches: Sequence[Batch]) -> list[Action]:
        """The commit returned: ``batches`` are durable, in seq order."""
        actions: list[Action] = []
        for batch in batches:
            # (Already delivered, by a catch-up from the log, with the ack: skipped.)
            self._offer(batch, actions)
        self.inflight.clear()
        return actions

    def commit_failed(self) -> None:
        """The commit's outcome is unknown (it timed out): its batches may still turn up in
        the log, and their senders are still acked then (the next commit clears them)."""

    def fetched(self, after: int, upto: int | None, batches: Sequence[Batch]) -> list[Action]:
        """The log's batches after ``after`` (up to ``upto``), as a ``Fetch`` asked."""
        self.fetching = False
        actions: list[Action] = []
        if not self.loaded:
            return actions
        contiguous = all(b.seq == after + 1 + i for i, b in enumerate(batches))
        complete = upto is None or len(batches) == upto - after
        if self.seq == after and not (contiguous and complete):
            # The log no longer has what we miss (pruned behind a snapshot, or we are off).
            actions.append(Reload())
            self.fetching = True  # nothing more to read until ``reset``
            return actions
        for batch in batches:
            self._offer(batch, actions, fill=False)
        self._want_gap(actions, delay=0.0)
        return actions

    def fetch_failed(self) -> list[Action]:
        # Not retried here: the next batch, join or periodic check asks again.
        self.fetching = False
        return []

    def behind(self, db_seq: int) -> list[Action]:
        """The database says the room is at ``db_seq`` (the periodic check)."""
        actions: list[Action] = []
        if self.loaded and db_seq > self.seq and not self.fetching:
            self.fetching = True
            actions.append(Fetch(self.seq, None, 0.0))
        return actions

    def join(self, member: ConnId) -> None:
        """``member`` receives every batch after ``seq`` from now on (its welcome is at
        ``seq``, and what it missed before was queued with it)."""
        self.members.add(member)

    def leave(self, member: ConnId) -> None:
        self.members.discard(member)

    def missed_since(self, last_seq: int) -> list[Batch] | None:
        """The batches after ``last_seq`` up to ``seq`` if kept in memory, else None."""
        if last_seq == self.seq:
            return []
        recent = self.recent
        if recent and recent[0].seq <= last_seq + 1 <= self.seq:
            return [b for b in recent if b.seq > last_seq]
        return None

    # ------------------------------------------------------------------ inside

    def _offer(self, batch: Batch, actions: list[Action], *, fill: bool = True) -> None:
        if self.loaded and batch.seq <= self.seq:
            return
        ack_to = None
        if batch.key is not None:
            ack_to = self.inflight.pop(batch.key, None) or self.requested.pop(batch.key, None)
        if batch.seq in self.pending:
            # The same batch again (the log and pub/sub both brought it): keep whoever is
            # to be acked.
            _, earlier = self.pending[batch.seq]
            ack_to = ack_to or earlier
        if self.loaded and batch.seq == self.seq + 1:
            self._deliver(batch, ack_to, actions)
            self._drain(actions)
            return
        self.pending[batch.seq] = (batch, ack_to)
        if fill:
            self._want_gap(actions, delay=self.gap_wait)

    def _deliver(self, batch: Batch, ack_to: ConnId | None, actions: list[Action]) -> None:
        self.seq = batch.seq
        self.recent.append(batch)
        actions.append(Deliver(batch, ack_to if ack_to in self.members else None))

    def _drain(self, actions: list[Action]) -> None:
        pending = self.pending
        while pending:
            found = pending.pop(self.seq + 1, None)
            if found is None:
                break
            self._deliver(found[0], found[1], actions)
        self._want_gap(actions, delay=self.gap_wait)

    def _want_gap(self, actions: list[Action], delay: float) -> None:
        if not self.loaded or self.fetching:
            return
        for stale in [s for s in self.pending if s <= self.seq]:
            del self.pending[stale]
        if self.pending:
            self.fetching = True
            actions.append(Fetch(self.seq, min(self.pending) - 1, delay))
