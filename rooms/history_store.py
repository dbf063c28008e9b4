"""Room history in PostgreSQL: the state at any kept seq, history batches, named versions.

``perform`` runs an undo, redo or restore in one transaction holding the room's row lock (the
lock every writer of the room takes, or skips and then waits for): it reads the member's
marks, rebuilds the states it needs from the nearest checkpoint and the log, asks
``rooms.history`` for the batch and inserts it with the next seq. Nothing can be sequenced in
between, so the conflict rule is judged against exactly the state the batch lands on. One
pool connection, and never a second one while it is held.

Checkpoints (``room_checkpoints``) are copies of the snapshots, made by a trigger; the state at
seq ``s`` is the newest checkpoint at or before ``s`` (or the empty state, while the log still
starts at seq 1) plus the log up to ``s``.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from rooms import history, store
from rooms.history import HistoryError, Mark, Plan, Record
from rooms.kinds import SERVER_USER_ID, Actor, NotInvertible, RoomKind

_mark_decoder = msgspec.json.Decoder(Mark | None)
_encoder = msgspec.json.Encoder()


class Undo(msgspec.Struct, frozen=True):
    pass


class Redo(msgspec.Struct, frozen=True):
    pass


class Restore(msgspec.Struct, frozen=True):
    """Exactly one of ``version`` and ``seq``."""

    version: uuid.UUID | None = None
    seq: int | None = None


Request = Undo | Redo | Restore


@dataclass(slots=True)
class Done:
    """A history request's outcome: the committed batch, or the seq of the same op id."""

    seq: int
    before: int  # the room's seq before it
    duplicate: bool = False
    entry: store.Entry | None = None
    plan: Plan | None = None


def _supported(kind: RoomKind[Any, Any]) -> None:
    if type(kind).diff is RoomKind.diff:
        raise HistoryError(history.NOT_SUPPORTED, f"{kind.name} rooms keep no history")


# ------------------------------------------------------------------ reading


async def records(
    conn: Any, kind: RoomKind[Any, Any], room_id: uuid.UUID, user: uuid.UUID
) -> list[Record]:
    """The member's batches in the kept log, with server batches made at their request."""
    on_behalf = type(kind).on_behalf_of is not RoomKind.on_behalf_of
    rows = await conn.fetch(
        "SELECT seq, author_id, (body->'history')::text AS mark,"
        " CASE WHEN author_id = $3 THEN (body->'ops')::text END AS ops"
        " FROM room_ops WHERE room_id = $1 AND author_id = ANY($2::uuid[]) ORDER BY seq",
        room_id,
        [user, SERVER_USER_ID] if on_behalf else [user],
        SERVER_USER_ID,
    )
    decoder = store.ops_decoder(kind)
    out = []
    for row in rows:
        if row["author_id"] == SERVER_USER_ID:
            ops = decoder.decode(row["ops"])
            if not any(kind.on_behalf_of(op) == user for op in ops):
                continue
        out.append(Record(row["seq"], _mark_decoder.decode(row["mark"] or "null")))
    return out


async def states_at(
    conn: Any, kind: RoomKind[Any, Any], room_id: uuid.UUID, seqs: Iterable[int]
) -> dict[int, Any]:
    """The room's state at each of ``seqs`` (all at or below its seq); raises
    ``HistoryError(history_unavailable)`` when the log no longer reaches back to one."""
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    first, last = wanted[0], wanted[-1]
    row = await conn.fetchrow(
        "SELECT seq, state::text AS state FROM ("
        " SELECT seq, state FROM room_checkpoints WHERE room_id = $1 AND seq <= $2"
        " UNION ALL SELECT seq, state FROM room_snapshots WHERE room_id = $1 AND seq <= $2"
        ") c ORDER BY seq DESC LIMIT 1",
        room_id,
        first,
    )
    if row is None:
        base, state = 0, kind.initial_state()
    else:
        base, state = row["seq"], msgspec.json.decode(row["state"], type=kind.state_type)
    entries = await store.fetch_entries(conn, room_id, base, last)
    if not store.contiguous(entries, base, last):
        raise HistoryError(
            history.HISTORY_UNAVAILABLE, f"seq {first} is older than the room's kept history"
        )
    decoder = store.ops_decoder(kind)
    found = {base: state} if base in wanted else {}
    for entry in entries:
        state = kind.apply_batch(state, decoder.decode(entry.ops), entry.actor)
        if entry.seq in wanted:
            found[entry.seq] = state
    return found


async def oldest(conn: Any, room_id: uuid.UUID, head: int) -> int:
    """The oldest seq whose state can still be rebuilt (``head`` when only the present)."""
    first = await conn.fetchval("SELECT min(seq) FROM room_ops WHERE room_id = $1", room_id)
    if first is None:
        return head
    if first == 1:
        return 0
    found = await conn.fetchval(
        "SELECT min(seq) FROM (SELECT seq FROM room_checkpoints WHERE room_id = $1"
        " UNION ALL SELECT seq FROM room_snapshots WHERE room_id = $1) c WHERE seq >= $2",
        room_id,
        first - 1,
    )
    return head if found is None else int(found)


# ------------------------------------------------------------------ undo, redo, restore


async def perform(
    pool: Any,
    kind: RoomKind[Any, Any],
    room_id: uuid.UUID,
    actor: Actor,
    op_id: str,
    request: Request,
) -> Done:
    """Compute and commit the history batch ``request`` asks for, as ``actor``'s batch with
    ``op_id``. Raises ``HistoryError``, ``store.RoomGone`` or database errors (then nothing
    was committed).

    The expensive part (rebuilding states from a checkpoint: up to a few hundred batches
    replayed) runs first, in a read-only snapshot without any lock; under the room's row lock
    only what other writers committed meanwhile is replayed, and the plan is made against
    exactly the state the batch lands on. One connection throughout.
    """
    _supported(kind)
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            head = await _seq(conn, room_id)
            duplicate = await _sent(conn, room_id, actor, op_id)
            if duplicate is not None:
                return Done(seq=duplicate, before=head, duplicate=True)
            current = (await states_at(conn, kind, room_id, [head]))[head]
            _may_edit(kind, current, actor)
            goal = await _goal(conn, kind, room_id, actor, request, head)
        async with conn.transaction():
            locked = await _seq(conn, room_id, lock=True)
            duplicate = await _sent(conn, room_id, actor, op_id)
            if duplicate is not None:
                return Done(seq=duplicate, before=locked, duplicate=True)
            if locked != head:
                entries = await store.fetch_entries(conn, room_id, head, locked)
                if store.contiguous(entries, head, locked):
                    current = store.replay(kind, current, entries)
                else:
                    current = (await states_at(conn, kind, room_id, [locked]))[locked]
                _may_edit(kind, current, actor)
                if goal.action != "restore":
                    # The member may have edited on another device meanwhile.
                    again = await _goal(conn, kind, room_id, actor, request, locked)
                    if again.target != goal.target:
                        goal = again
            try:
                plan = goal.plan(kind, actor, current)
            except NotInvertible as exc:
                raise HistoryError(history.NOT_SUPPORTED, str(exc)) from None
            ops_json = store.encode_ops(plan.ops)
            body = store.Body(role=actor.role, ops=msgspec.Raw(ops_json), history=plan.mark)
            await conn.execute(
                "INSERT INTO room_ops (room_id, seq, author_id, op_id, body)"
                " VALUES ($1, $2, $3, $4, $5::jsonb)",
                room_id,
                locked + 1,
                actor.user_id,
                op_id,
                _encoder.encode(body).decode(),
            )
            await conn.execute("UPDATE rooms SET seq = $2 WHERE id = $1", room_id, locked + 1)
    entry = store.Entry(locked + 1, actor.user_id, op_id, actor.role, ops_json, plan.mark)
    return Done(seq=locked + 1, before=locked, entry=entry, plan=plan)


async def _seq(conn: Any, room_id: uuid.UUID, *, lock: bool = False) -> int:
    query = "SELECT seq FROM rooms WHERE id = $1" + (" FOR UPDATE" if lock else "")
    seq = await conn.fetchval(query, room_id)
    if seq is None:
        raise store.RoomGone(str(room_id))
    return int(seq)


async def _sent(conn: Any, room_id: uuid.UUID, actor: Actor, op_id: str) -> int | None:
    """The seq of the actor's batch with this op id, if there is one."""
    seq = await conn.fetchval(
        "SELECT seq FROM room_ops WHERE room_id = $1 AND author_id = $2 AND op_id = $3",
        room_id,
        actor.user_id,
        op_id,
    )
    return None if seq is None else int(seq)


def _may_edit(kind: RoomKind[Any, Any], state: Any, actor: Actor) -> None:
    if not kind.may_edit(state, actor):
        raise HistoryError(history.FORBIDDEN, "your role may not edit this room")


@dataclass(slots=True)
class _Goal:
    """What a request goes back to: the states around the batch to undo (``after`` set), or
    the state to restore."""

    action: history.Action
    target: int
    before: Any
    after: Any = None
    version: uuid.UUID | None = None

    def plan(self, kind: RoomKind[Any, Any], actor: Actor, current: Any) -> Plan:
        if self.action == "restore":
            return history.plan_restore(
                kind, actor, self.target, self.before, current, self.version
            )
        return history.plan_undo(
            kind, actor, self.target, self.before, self.after, current, self.action
        )


async def _goal(
    conn: Any,
    kind: RoomKind[Any, Any],
    room_id: uuid.UUID,
    actor: Actor,
    request: Request,
    head: int,
) -> _Goal:
    if isinstance(request, Undo | Redo):
        action: Literal["undo", "redo"] = "undo" if isinstance(request, Undo) else "redo"
        target = history.target_of(action, await records(conn, kind, room_id, actor.user_id))
        found = await states_at(conn, kind, room_id, [target - 1, target])
        return _Goal(action, target, found[target - 1], found[target])
    if (request.version is None) == (request.seq is None):
        raise HistoryError(history.INVALID, "restore takes exactly one of version and seq")
    if request.version is not None:
        row = await conn.fetchrow(
            "SELECT seq, state::text AS state FROM room_versions WHERE id = $1 AND room_id = $2",
            request.version,
            room_id,
        )
        if row is None:
            raise HistoryError(history.UNKNOWN_VERSION, "no such version in this room")
        goal = msgspec.json.decode(row["state"], type=kind.state_type)
        return _Goal("restore", row["seq"], goal, version=request.version)
    assert request.seq is not None
    _check_seq(request.seq, head)
    return _Goal(
        "restore", request.seq, (await states_at(conn, kind, room_id, [request.seq]))[request.seq]
    )


def _check_seq(seq: int, head: int) -> None:
    if not 0 <= seq <= head:
        raise HistoryError(history.INVALID, f"seq must be between 0 and the room's seq ({head})")


# ------------------------------------------------------------------ named versions


class Version(msgspec.Struct, frozen=True):
    id: uuid.UUID
    label: str
    seq: int
    author: uuid.UUID | None
    created_at: datetime.datetime
    author_name: str | None = None


_VERSION_COLUMNS = "v.id, v.label, v.seq, v.author_id, v.created_at, u.username"
_VERSIONS = "room_versions v LEFT JOIN users u ON u.id = v.author_id"


def _version(row: Any) -> Version:
    return Version(
        id=row["id"],
        label=row["label"],
        seq=row["seq"],
        author=row["author_id"],
        created_at=row["created_at"],
        author_name=row["username"],
    )


async def name_version(
    pool: Any,
    kind: RoomKind[Any, Any],
    room_id: uuid.UUID,
    actor: Actor,
    op_id: str,
    label: str,
    seq: int | None,
) -> tuple[Version, bool]:
    """Name the room's state at ``seq`` (its latest when None); the version and whether the
    op id had named it before. Raises ``HistoryError`` or ``store.RoomGone``."""
    _supported(kind)
    label = history.clean_label(label)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        found = await conn.fetchrow(
            f"SELECT {_VERSION_COLUMNS} FROM {_VERSIONS}"
            " WHERE v.room_id = $1 AND v.author_id = $2 AND v.op_id = $3",
            room_id,
            actor.user_id,
            op_id,
        )
        if found is not None:
            return _version(found), True
        head = await _seq(conn, room_id)
        at = head if seq is None else seq
        _check_seq(at, head)
        states = await states_at(conn, kind, room_id, {at, head})
        _may_edit(kind, states[head], actor)
        count = await conn.fetchval(
            "SELECT count(*) FROM room_versions WHERE room_id = $1", room_id
        )
        if count >= history.MAX_VERSIONS:
            raise HistoryError(
                history.TOO_MANY_VERSIONS, f"a room keeps at most {history.MAX_VERSIONS} versions"
            )
        row = await conn.fetchrow(
            "WITH v AS (INSERT INTO room_versions (room_id, seq, label, author_id, op_id, state)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING *)"
            f" SELECT {_VERSION_COLUMNS} FROM v LEFT JOIN users u ON u.id = v.author_id",
            room_id,
            at,
            label,
            actor.user_id,
            op_id,
            store.encode_state(states[at]).decode(),
        )
    return _version(row), False


async def versions(conn: Any, room_id: uuid.UUID) -> list[Version]:
    """The room's named versions, newest first."""
    rows = await conn.fetch(
        f"SELECT {_VERSION_COLUMNS} FROM {_VERSIONS} WHERE v.room_id = $1"
        " ORDER BY v.created_at DESC",
        room_id,
    )
    return [_version(row) for row in rows]


async def version_state(
    conn: Any, kind: RoomKind[Any, Any], room_id: uuid.UUID, version_id: uuid.UUID
) -> tuple[Version, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_VERSION_COLUMNS}, v.state::text AS state FROM {_VERSIONS}"
        " WHERE v.id = $1 AND v.room_id = $2",
        version_id,
        room_id,
    )
    if row is None:
        return None
    return _version(row), msgspec.json.decode(row["state"], type=kind.state_type)


# ------------------------------------------------------------------ the history listing


class HistoryEntry(msgspec.Struct, frozen=True):
    seq: int
    author: uuid.UUID
    author_name: str | None
    op_id: str
    at: datetime.datetime
    summary: str
    ops: int
    history: Mark | None


class HistoryPage(msgspec.Struct, frozen=True):
    seq: int  # the room's seq
    oldest: int  # the oldest seq that can still be restored
    entries: list[HistoryEntry]  # newest first


async def page(
    conn: Any, kind: RoomKind[Any, Any], room_id: uuid.UUID, before: int | None, limit: int
) -> HistoryPage:
    """Batches newest first (below ``before`` when given), with human summaries."""
    head = await conn.fetchval("SELECT seq FROM rooms WHERE id = $1", room_id)
    if head is None:
        head = 0  # (a room nobody has joined yet has no row: no history)
    rows = await conn.fetch(
        "SELECT o.seq, o.author_id, o.op_id, o.created_at, u.username,"
        " (o.body->'ops')::text AS ops, (o.body->'history')::text AS mark"
        " FROM room_ops o LEFT JOIN users u ON u.id = o.author_id"
        " WHERE o.room_id = $1 AND ($2::bigint IS NULL OR o.seq < $2)"
        " ORDER BY o.seq DESC LIMIT $3",
        room_id,
        before,
        limit,
    )
    decoder = store.ops_decoder(kind)
    entries = []
    for row in rows:
        ops = decoder.decode(row["ops"])
        mark = _mark_decoder.decode(row["mark"] or "null")
        entries.append(
            HistoryEntry(
                seq=row["seq"],
                author=row["author_id"],
                author_name=row["username"],
                op_id=row["op_id"],
                at=row["created_at"],
                summary=history.summary(kind, ops, mark),
                ops=len(ops),
                history=mark,
            )
        )
    return HistoryPage(seq=head, oldest=await oldest(conn, room_id, head), entries=entries)


async def state_at(conn: Any, kind: RoomKind[Any, Any], room_id: uuid.UUID, seq: int) -> Any:
    """The state at ``seq``, read consistently (run it in a repeatable-read transaction).
    Raises ``HistoryError`` (``invalid``, ``history_unavailable``)."""
    head = await conn.fetchval("SELECT seq FROM rooms WHERE id = $1", room_id) or 0
    _check_seq(seq, head)
    return (await states_at(conn, kind, room_id, [seq]))[seq]
