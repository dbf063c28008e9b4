"""The durable side of rooms: sequencing, the op log and snapshots in PostgreSQL.

A room's ``rooms.seq`` is its last sequence number. Accepted batches are rows of
``room_ops`` with consecutive seqs; the row lock on ``rooms`` (or the ``seq = expected``
compare-and-set of the fast path) is what makes the order total across processes. A batch is
acknowledged only after its transaction committed.

Retention: every ``room_snapshot_every`` batches the committing process stores the state as
a snapshot and deletes log rows more than ``room_log_retention`` batches behind it. Loading a
room is snapshot + the log after it; a client resuming from a seq still in the log gets the
batches it missed, otherwise a snapshot. Op ids stay idempotent as long as their batch is in
the log: at least ``room_log_retention`` batches and at least ``room_op_id_hours`` (24 h).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import msgspec

from db.pool import acquire_clean
from rooms.history import Mark
from rooms.kinds import Actor, OpRejected, RoomKind
from rooms.protocol import OP_ID_MAX, Batch, encode

logger = logging.getLogger("blendtune.rooms")


class Body(msgspec.Struct, omit_defaults=True):
    """``room_ops.body``: the actor's role (so replays see the same actor) and the ops; a
    history batch's also says what it did (``rooms.history``)."""

    role: str
    ops: msgspec.Raw
    history: Mark | None = None


_body_decoder = msgspec.json.Decoder(Body)
_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Entry:
    """One committed batch."""

    seq: int
    author: uuid.UUID
    op_id: str
    role: str
    ops: bytes  # canonical JSON array
    history: Mark | None = None  # an undo, redo or restore: what it did

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.author, role=self.role)

    def batch_text(self) -> str:
        return encode(
            Batch(seq=self.seq, author=self.author, op_id=self.op_id, ops=msgspec.Raw(self.ops))
        )


@dataclass(slots=True)
class Pending:
    """A batch waiting to be sequenced, and afterwards its outcome."""

    actor: Actor
    op_id: str
    ops: list[Any]
    ops_json: bytes
    owner: Any = None  # whatever the caller needs to route the answer (a connection)
    seq: int | None = None  # accepted (or, with duplicate=True, the original seq)
    duplicate: bool = False
    rejected: OpRejected | None = None
    key: tuple[uuid.UUID, str] = field(init=False)

    def __post_init__(self) -> None:
        self.key = (self.actor.user_id, self.op_id)


class Replica(Protocol):
    """What the sequencer needs from the in-memory copy of a room."""

    kind: RoomKind[Any, Any]
    room_id: uuid.UUID

    @property
    def seq(self) -> int: ...

    @property
    def loaded(self) -> bool: ...

    def current_state(self) -> Any: ...

    def catch_up(self, entries: Sequence[Entry]) -> None:
        """Apply batches committed by someone else (consecutive, possibly overlapping)."""

    def reset(self, seq: int, state: Any) -> None:
        """Replace the state wholesale (the log no longer reaches back far enough)."""


class RoomGone(Exception):
    """The room's row is gone (its blend or mashup was deleted)."""


# ------------------------------------------------------------------ reading


async def ensure_room(conn: Any, kind: str, room_id: uuid.UUID) -> bool:
    """Create the room's row if needed; False if the id belongs to a room of another kind.

    Domain code may call this in the transaction that creates the blend or mashup; the rooms
    core also calls it when the first member joins (after ``kind.exists``).
    """
    select = "SELECT kind FROM rooms WHERE id = $1"
    found = await conn.fetchval(select, room_id)
    if found is None:
        # Separate statements: a concurrent insert is visible to the second SELECT.
        await conn.execute(
            "INSERT INTO rooms (id, kind) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            room_id,
            kind,
        )
        found = await conn.fetchval(select, room_id)
    return bool(found == kind)


async def fetch_entries(
    conn: Any, room_id: uuid.UUID, after: int, upto: int | None = None
) -> list[Entry]:
    rows = await conn.fetch(
        "SELECT seq, author_id, op_id, body::text AS body FROM room_ops"
        " WHERE room_id = $1 AND seq > $2 AND ($3::bigint IS NULL OR seq <= $3) ORDER BY seq",
        room_id,
        after,
        upto,
    )
    return [_entry(row) for row in rows]


def _entry(row: Any) -> Entry:
    """A ``room_ops`` row (``seq``, ``author_id``, ``op_id``, ``body`` as text)."""
    body = _body_decoder.decode(row["body"])
    return Entry(
        seq=row["seq"],
        author=row["author_id"],
        op_id=row["op_id"],
        role=body.role,
        ops=bytes(body.ops),
        history=body.history,
    )


def contiguous(entries: Sequence[Entry], after: int, upto: int) -> bool:
    return len(entries) == upto - after and (not entries or entries[0].seq == after + 1)


def replay(kind: RoomKind[Any, Any], state: Any, entries: Sequence[Entry]) -> Any:
    decoder = ops_decoder(kind)
    for entry in entries:
        state = kind.apply_batch(state, decoder.decode(entry.ops), entry.actor)
    return state


_decoders: dict[int, msgspec.json.Decoder[Any]] = {}


def ops_decoder(kind: RoomKind[Any, Any]) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(id(kind))
    if decoder is None:
        decoder = _decoders[id(kind)] = msgspec.json.Decoder(list[kind.op_type])  # type: ignore[name-defined]
    return decoder


async def _load_in(conn: Any, kind: RoomKind[Any, Any], room_id: uuid.UUID) -> tuple[int, Any]:
    seq = await conn.fetchval("SELECT seq FROM rooms WHERE id = $1", room_id)
    if seq is None:
        raise RoomGone(str(room_id))
    row = await conn.fetchrow(
        "SELECT seq, state::text AS state FROM room_snapshots WHERE room_id = $1", room_id
    )
    if row is None:
        base, state = 0, kind.initial_state()
    else:
        base, state = row["seq"], msgspec.json.decode(row["state"], type=kind.state_type)
    entries = await fetch_entries(conn, room_id, base, seq)
    if not contiguous(entries, base, seq):
        raise RuntimeError(f"room {room_id}: op log has a hole after snapshot {base}")
    return seq, replay(kind, state, entries)


async def load(pool: Any, kind: RoomKind[Any, Any], room_id: uuid.UUID) -> tuple[int, Any]:
    """The room's seq and state, read consistently. Raises ``RoomGone``."""
    async with (
        acquire_clean(pool) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        return await _load_in(conn, kind, room_id)


# ------------------------------------------------------------------ sequencing

# One statement, one round trip, for any number of rooms: lock each room's row if its seq is
# still the expected one (SKIP LOCKED: never wait, so never deadlock with another process),
# move the seq and insert the batches. It answers three kinds of rows (``k``):
#   0  a room committed;
#   1  a room not committed, with its seq as the statement saw it (NULL: the row is gone);
#   2  the log entries after the expected seq of a room not committed (another process
#      moved its seq: what this replica misses, read in the same snapshot as that seq).
# So a room that lost the race to another process has what it needs to catch up and try
# again without another round trip, and without the row lock. A re-sent op id (unique
# violation) fails the statement as a whole, and then every room of it takes the locking path.
_FAST = """
WITH t AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS t(id, expected, last)
), locked AS MATERIALIZED (
    SELECT r.id, t.last FROM rooms r JOIN t ON r.id = t.id AND r.seq = t.expected
    FOR UPDATE OF r SKIP LOCKED
), upd AS (
    UPDATE rooms r SET seq = locked.last FROM locked WHERE r.id = locked.id RETURNING r.id
), ins AS (
    INSERT INTO room_ops (room_id, seq, author_id, op_id, body)
    SELECT e.room_id, e.seq, e.author, e.op_id, e.body::jsonb
    FROM unnest($4::uuid[], $5::bigint[], $6::uuid[], $7::text[], $8::text[])
        AS e(room_id, seq, author, op_id, body)
    WHERE e.room_id IN (SELECT id FROM upd)
    RETURNING 1
), missed AS (
    SELECT t.id, t.expected FROM t WHERE t.id NOT IN (SELECT id FROM upd)
)
SELECT 0 AS k, id, NULL::bigint AS seq, NULL::uuid AS author_id, NULL::text AS op_id,
    NULL::text AS body
FROM upd
UNION ALL
SELECT 1, m.id, r.seq, NULL, NULL, NULL FROM missed m LEFT JOIN rooms r ON r.id = m.id
UNION ALL
SELECT 2, o.room_id, o.seq, o.author_id, o.op_id, o.body::text
FROM missed m JOIN room_ops o ON o.room_id = m.id AND o.seq > m.expected
"""

_INSERT = """
INSERT INTO room_ops (room_id, seq, author_id, op_id, body)
SELECT $1, t.seq, t.author, t.op_id, t.body::jsonb
FROM unnest($2::bigint[], $3::uuid[], $4::text[], $5::text[]) AS t(seq, author, op_id, body)
"""

_DUPLICATES = """
SELECT o.author_id, o.op_id, o.seq FROM room_ops o
JOIN unnest($2::uuid[], $3::text[]) AS t(author, op_id)
  ON o.author_id = t.author AND o.op_id = t.op_id
WHERE o.room_id = $1
"""


def _columns(entries: Sequence[Entry]) -> tuple[list[int], list[uuid.UUID], list[str], list[str]]:
    return (
        [e.seq for e in entries],
        [e.author for e in entries],
        [e.op_id for e in entries],
        [_encoder.encode(Body(role=e.role, ops=msgspec.Raw(e.ops))).decode() for e in entries],
    )


def _validate(
    kind: RoomKind[Any, Any], state: Any, seq: int, batch: Sequence[Pending]
) -> tuple[Any, list[Entry]]:
    """Apply the batches in order; rejected ones consume no seq and change nothing."""
    entries = []
    for pending in batch:
        try:
            state = kind.apply_batch(state, pending.ops, pending.actor)
        except OpRejected as exc:
            pending.rejected = exc
            continue
        except Exception:  # a bug in the kind must not take the room (or others) down
            logger.exception("room kind %s failed to apply a batch", kind.name)
            pending.rejected = OpRejected("internal", "the server could not apply this batch")
            continue
        seq += 1
        pending.seq = seq
        entries.append(
            Entry(seq, pending.actor.user_id, pending.op_id, pending.actor.role, pending.ops_json)
        )
    return state, entries


async def _mark_duplicates(conn: Any, room_id: uuid.UUID, batch: Sequence[Pending]) -> None:
    if not batch:
        return
    rows = await conn.fetch(
        _DUPLICATES, room_id, [p.actor.user_id for p in batch], [p.op_id for p in batch]
    )
    found = {(row["author_id"], row["op_id"]): row["seq"] for row in rows}
    for pending in batch:
        if pending.key in found:
            pending.seq = found[pending.key]
            pending.duplicate = True
            pending.rejected = None


@dataclass
class _Group:
    """One room's share of a commit."""

    replica: Replica
    unique: list[Pending]
    repeats: list[tuple[Pending, Pending]]
    expected: int = 0  # the seq the entries follow
    state: Any = None
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def of(cls, replica: Replica, batch: Sequence[Pending]) -> _Group:
        # The same op id twice in one group: the second is answered like the first.
        unique: list[Pending] = []
        first: dict[tuple[uuid.UUID, str], Pending] = {}
        repeats: list[tuple[Pending, Pending]] = []
        for pending in batch:
            original = first.get(pending.key)
            if original is None:
                first[pending.key] = pending
                unique.append(pending)
            else:
                repeats.append((pending, original))
        return cls(replica, unique, repeats)

    def validate(self) -> bool:
        """Validate the batches (all but known duplicates) on the replica's current state;
        False if it has none to offer (the locking path reloads it)."""
        replica = self.replica
        if not replica.loaded:
            return False
        try:
            state = replica.current_state()
        except Exception:
            # The replica could not bring its state up to date (it is reloading).
            return False
        fresh = []
        for pending in self.unique:
            if not pending.duplicate:
                pending.seq, pending.rejected = None, None
                fresh.append(pending)
        self.expected = replica.seq
        self.state, self.entries = _validate(replica.kind, state, self.expected, fresh)
        return True

    def catch_up(self, db_seq: int, missed: list[Entry]) -> bool:
        """Another process moved the seq to ``db_seq``; ``missed`` is the log after
        ``expected`` up to it. Apply what the replica lacks (pub/sub may have brought some
        of it meanwhile, and brings all of it again later: the replica skips what it has)
        and mark the batches already in the log as duplicates. False if the replica cannot
        be brought to ``db_seq`` from these entries."""
        replica = self.replica
        if not contiguous(missed, self.expected, db_seq):
            return False  # (the log was pruned, or the replica was reset meanwhile)
        after = replica.seq
        if after < db_seq:
            if after < self.expected:
                return False
            replica.catch_up([e for e in missed if e.seq > after])
            if replica.seq < db_seq:
                return False
        logged = {(e.author, e.op_id): e.seq for e in missed}
        for pending in self.unique:
            seq = logged.get(pending.key)
            if seq is not None:
                pending.seq, pending.duplicate, pending.rejected = seq, True, None
        return True

    def result(self) -> tuple[Any, list[Entry]]:
        for pending, original in self.repeats:
            if original.seq is not None:
                pending.seq, pending.duplicate = original.seq, True
            else:
                pending.rejected = original.rejected
        return self.state, self.entries


Outcome = tuple[Any, list[Entry]] | BaseException

LOCKED_COMMITS_AT_ONCE = 4
"""Rooms committed on the locking path at once by one group commit (each holds a connection)."""

FAST_ROUNDS = 3
"""Fast statements one group commit sends before the rooms still not committed (another
process kept moving their seq, or held their row each time) take the locking path."""


async def commit_many(
    pool: Any,
    work: Sequence[tuple[Replica, Sequence[Pending]]],
    paths: dict[str, int] | None = None,
) -> list[Outcome]:
    """Sequence and persist batches for several rooms at once (group commit).

    For each room: sets each Pending's outcome (seq, duplicate or rejected) and returns the
    state after the accepted batches with their entries, or the exception for that room
    (``RoomGone``, a database error). The caller applies the entries to the replica (which is
    at ``entries[0].seq - 1`` then), acknowledges and publishes. Raises when the database
    cannot be reached at all (nothing was committed; clients resend).

    A room whose seq another process moved is caught up from the entries the fast statement
    returns (``Replica.catch_up``), its batches validated again on the new state, and sent
    again in the next fast statement, up to ``FAST_ROUNDS`` statements in all; only then,
    or when a re-sent op id fails the statement, does it take the locking path.
    """
    groups = [_Group.of(replica, batch) for replica, batch in work]
    slow: list[_Group] = []
    done: list[_Group] = []  # sequenced (or all rejected or duplicates) on the fast path
    retried: set[int] = set()  # (ids of groups that needed more than one statement)
    todo: list[_Group] = []
    for g in groups:
        (todo if g.validate() else slow).append(g)
    async with acquire_clean(pool) as conn:
        rounds = 0
        while todo:
            writing = [g for g in todo if g.entries]
            done.extend(g for g in todo if not g.entries)
            todo = []
            if not writing:
                break
            rounds += 1
            entries = [(g.replica.room_id, e) for g in writing for e in g.entries]
            seqs, authors, op_ids, bodies = _columns([e for _, e in entries])
            try:
                rows = await conn.fetch(
                    _FAST,
                    [g.replica.room_id for g in writing],
                    [g.expected for g in writing],
                    [g.entries[-1].seq for g in writing],
                    [room_id for room_id, _ in entries],
                    seqs,
                    authors,
                    op_ids,
                    bodies,
                )
            except asyncpg.UniqueViolationError:
                # A re-sent op id somewhere (nothing of this statement was written): sort
                # it out under the lock.
                slow.extend(writing)
                break
            committed: set[uuid.UUID] = set()
            db_seqs: dict[uuid.UUID, int | None] = {}
            missed: dict[uuid.UUID, list[Entry]] = {}
            for row in rows:
                k = row["k"]
                if k == 0:
                    committed.add(row["id"])
                elif k == 1:
                    db_seqs[row["id"]] = row["seq"]
                else:
                    missed.setdefault(row["id"], []).append(_entry(row))
            for g in writing:
                room_id = g.replica.room_id
                if room_id in committed:
                    done.append(g)
                    continue
                retried.add(id(g))
                db_seq = db_seqs.get(room_id)
                room_missed = sorted(missed.get(room_id, ()), key=lambda e: e.seq)
                if (
                    rounds < FAST_ROUNDS
                    and db_seq is not None
                    and db_seq >= g.expected
                    and g.catch_up(db_seq, room_missed)
                    and g.validate()
                ):
                    # (db_seq == expected: the row was locked by another process's
                    # statement, or moved just after this one's snapshot: try again.)
                    todo.append(g)
                else:
                    slow.append(g)
        # A rejected batch may be a re-sent one that was applied before.
        for g in done:
            rejected = [p for p in g.unique if p.rejected]
            if rejected:
                await _mark_duplicates(conn, g.replica.room_id, rejected)
    outcomes: dict[int, Outcome] = {id(g): g.result() for g in done}
    if paths is not None:  # (for the metrics: how often rooms need more than one statement)
        again = sum(1 for g in done if id(g) in retried)
        paths["fast"] = paths.get("fast", 0) + len(done) - again
        paths["fast_retry"] = paths.get("fast_retry", 0) + again
        paths["locked"] = paths.get("locked", 0) + len(slow)

    # Each room locks only its own row, so they may run side by side, but only a few at a
    # time: a burst of rooms on this path must not take the whole pool from requests.
    slots = asyncio.Semaphore(LOCKED_COMMITS_AT_ONCE)

    async def locked(g: _Group) -> None:
        for pending in g.unique:
            pending.seq, pending.duplicate, pending.rejected = None, False, None
        try:
            async with slots:
                g.state, g.entries = await _commit_locked(pool, g.replica, g.unique)
            outcomes[id(g)] = g.result()
        except Exception as exc:
            outcomes[id(g)] = exc

    await asyncio.gather(*(locked(g) for g in slow))
    return [outcomes[id(g)] for g in groups]


async def commit(pool: Any, replica: Replica, batch: Sequence[Pending]) -> tuple[Any, list[Entry]]:
    """``commit_many`` for one room; raises that room's exception."""
    (outcome,) = await commit_many(pool, [(replica, batch)])
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def _commit_locked(
    pool: Any, replica: Replica, batch: Sequence[Pending]
) -> tuple[Any, list[Entry]]:
    room_id = replica.room_id
    async with acquire_clean(pool) as conn, conn.transaction():
        seq = await conn.fetchval("SELECT seq FROM rooms WHERE id = $1 FOR UPDATE", room_id)
        if seq is None:
            raise RoomGone(str(room_id))
        if not replica.loaded or seq < replica.seq:
            replica.reset(*await _load_in(conn, replica.kind, room_id))
        elif seq > replica.seq:
            after = replica.seq
            entries = await fetch_entries(conn, room_id, after, seq)
            if contiguous(entries, after, seq):
                replica.catch_up(entries)
            else:
                replica.reset(*await _load_in(conn, replica.kind, room_id))
        assert replica.seq == seq, (replica.seq, seq)
        await _mark_duplicates(conn, room_id, batch)
        fresh = [p for p in batch if not p.duplicate]
        state, entries = _validate(replica.kind, replica.current_state(), seq, fresh)
        if entries:
            await conn.execute(_INSERT, room_id, *_columns(entries))
            await conn.execute("UPDATE rooms SET seq = $2 WHERE id = $1", room_id, entries[-1].seq)
    return state, entries


async def write_snapshot(
    pool: Any,
    room_id: uuid.UUID,
    seq: int,
    state_json: bytes,
    retention: int,
    keep_hours: float = 24.0,
) -> None:
    """Store the state at ``seq`` (unless a newer snapshot exists) and prune the log.

    A row goes only when it is both ``retention`` batches behind the snapshot and older than
    ``keep_hours``: op ids are idempotent for that long whatever the room's rate.
    """
    async with acquire_clean(pool) as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO room_snapshots (room_id, seq, state) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (room_id) DO UPDATE SET seq = excluded.seq, state = excluded.state,"
            " created_at = now() WHERE room_snapshots.seq < excluded.seq",
            room_id,
            seq,
            state_json.decode(),
        )
        await conn.execute(
            "DELETE FROM room_ops WHERE room_id = $1 AND seq <= $2"
            " AND created_at < now() - make_interval(secs => $3)",
            room_id,
            seq - retention,
            keep_hours * 3600.0,
        )


def snapshot_due(before: int, after: int, every: int) -> bool:
    return before // every != after // every


# ------------------------------------------------------------------ server-side submissions


@dataclass
class Detached:
    """A replica with no members: loaded inside the locking transaction."""

    kind: RoomKind[Any, Any]
    room_id: uuid.UUID
    seq: int = 0
    loaded: bool = False
    state: Any = None

    def current_state(self) -> Any:
        return self.state

    def catch_up(self, entries: Sequence[Entry]) -> None:
        self.state = replay(self.kind, self.state, [e for e in entries if e.seq > self.seq])
        self.seq = max(self.seq, entries[-1].seq) if entries else self.seq

    def reset(self, seq: int, state: Any) -> None:
        self.seq, self.state, self.loaded = seq, state, True


def validate_op_id(op_id: str) -> bool:
    return 0 < len(op_id) <= OP_ID_MAX


def encode_ops(ops: Sequence[Any]) -> bytes:
    """The canonical JSON of a list of op Structs (what is stored and fanned out)."""
    return _encoder.encode(ops)


def encode_state(state: Any) -> bytes:
    return _encoder.encode(state)
