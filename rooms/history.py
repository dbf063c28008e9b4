"""Room history, the pure part: per-member undo and redo stacks, and the batches that undo,
redo or restore. No I/O: ``rooms.history_store`` reads the log, calls this, and commits.

A history batch is an ordinary batch by the member who asked for it (so it is sequenced,
fanned out and replayed like any other, and can itself be undone); its ``room_ops`` body
carries a ``Mark`` saying what it did. A member's stacks are derived from the marks of their
batches in the kept log, so they survive reconnects, other devices and server restarts.

The rules (docs/rooms.md, "History"):

- **Undo** takes the member's newest batch not yet undone (a batch of theirs, a redo, or a
  server batch made at their request), and computes, with the kind's ``diff``, the ops that
  turn the state right after it back into the state right before it. Each op touches one
  part of the state (``RoomKind.touched``: a clip's position, a whole item, the tempo). An op
  is kept only where the room *now* still shows exactly what the undone batch left there;
  parts someone else changed since are skipped, never overwritten. The kept ops are applied
  to the current state one by one (an op the reducer refuses now is retried after the others,
  then skipped), and what applied is committed as one new batch (possibly empty).
- **Redo** is the undo of that member's newest undo, while they have made no new edit since.
- **Restore** (a named version, or a seq still in the log) is the ``diff`` from the current
  state to that state, applied the same way (nothing is compared: it is a new edit).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from rooms.kinds import Actor, RoomKind

# Error codes (``error.code``) of the history messages; docs/protocol.md lists them.
NOTHING_TO_UNDO = "nothing_to_undo"
NOTHING_TO_REDO = "nothing_to_redo"
HISTORY_UNAVAILABLE = "history_unavailable"
UNKNOWN_VERSION = "unknown_version"
NOT_SUPPORTED = "not_supported"
TOO_MANY_VERSIONS = "too_many_versions"
FORBIDDEN = "forbidden"
INVALID = "invalid"

# Named versions per room (they are never pruned, so they are bounded).
MAX_VERSIONS = 500
LABEL_MAX = 100

Action = Literal["undo", "redo", "restore"]


class HistoryError(Exception):
    """A history request that cannot be served; ``code`` is the documented error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Mark(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a history batch did; stored as ``history`` in its ``room_ops`` body.

    ``target``: for an undo, the seq of the batch undone; for a redo, the seq of the undo
    redone; for a restore, the seq whose state was restored (a version's seq).
    """

    action: Action
    target: int
    version: uuid.UUID | None = None
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Record:
    """One batch on a member's history: theirs, or a server batch made at their request."""

    seq: int
    mark: Mark | None


@dataclass(slots=True)
class Stacks:
    undo: list[int]  # seqs that undo would take, newest last
    redo: list[int]  # seqs of undo batches that redo would take, newest last


def stacks(records: Sequence[Record]) -> Stacks:
    """The member's undo and redo stacks from their batches in the kept log, in seq order.

    A new edit (or restore) goes on the undo stack and clears the redo stack; an undo moves
    its target to the redo stack (as the undo batch); a redo moves back (as the redo batch,
    which a later undo inverts). Batches pruned from the log simply drop out.
    """
    undo: list[int] = []
    redo: list[int] = []
    for record in records:
        mark = record.mark
        if mark is None or mark.action == "restore":
            undo.append(record.seq)
            redo.clear()
        elif mark.action == "undo":
            if mark.target in undo:
                undo.remove(mark.target)
            redo.append(record.seq)
        elif mark.target in redo:
            redo.remove(mark.target)
            undo.append(record.seq)
        else:
            undo.append(record.seq)  # (its undo was pruned: it is an edit like any other)
    return Stacks(undo, redo)


def target_of(action: Literal["undo", "redo"], records: Sequence[Record]) -> int:
    """The seq an undo (the batch to undo) or a redo (the undo batch to undo) would take.
    Raises ``HistoryError`` (``nothing_to_undo``, ``nothing_to_redo``)."""
    found = stacks(records)
    stack = found.undo if action == "undo" else found.redo
    if not stack:
        code = NOTHING_TO_UNDO if action == "undo" else NOTHING_TO_REDO
        raise HistoryError(code, f"nothing of yours to {action} in the room's kept history")
    return stack[-1]


@dataclass(slots=True)
class Plan:
    """A history batch to commit: its ops, the state after them, and what was left out."""

    ops: list[Any]
    state: Any
    skipped: int
    mark: Mark


def rewind(
    kind: RoomKind[Any, Any], actor: Actor, after: Any, goal: Any, head: Any
) -> tuple[list[Any], Any, int]:
    """Ops turning ``head`` towards ``goal`` wherever ``head`` still shows what ``after``
    showed; with the state they lead to and how many ops were skipped.

    For an undo, ``after``/``goal`` are the states right after/before the undone batch; for a
    restore, ``after`` is ``head`` itself (a restore overrides whatever is there).
    """
    candidates = kind.diff(after, goal, actor)
    if after is head:
        kept = candidates
    else:
        kept = [
            op
            for op in candidates
            if kind.touched(head, op, actor) == kind.touched(after, op, actor)
        ]
    skipped = len(candidates) - len(kept)
    # Fast path: everything applies in order.
    try:
        return kept, kind.apply_batch(head, kept, actor), skipped
    except Exception:  # (OpRejected, or a kind bug: one op at a time isolates it)
        pass
    # An op may only apply after another (a tempo the clips allow only once one of them is
    # back to its old source tempo): retry the refused ones while anything makes progress.
    state = head
    applied: list[Any] = []
    waiting = kept
    while waiting:
        refused = []
        for op in waiting:
            try:
                state = kind.apply(state, op, actor)
            except Exception:
                refused.append(op)
                continue
            applied.append(op)
        if len(refused) == len(waiting):
            break
        waiting = refused
    return applied, state, skipped + len(waiting)


def plan_undo(
    kind: RoomKind[Any, Any],
    actor: Actor,
    target: int,
    before: Any,
    after: Any,
    head: Any,
    action: Action = "undo",
) -> Plan:
    """The batch undoing the batch at ``target`` (state ``before`` it and ``after`` it) on
    the current state ``head``. A redo is the undo of an undo batch (``action="redo"``)."""
    ops, state, skipped = rewind(kind, actor, after, before, head)
    return Plan(ops, state, skipped, Mark(action=action, target=target, skipped=skipped))


def plan_restore(
    kind: RoomKind[Any, Any],
    actor: Actor,
    seq: int,
    goal: Any,
    head: Any,
    version: uuid.UUID | None = None,
) -> Plan:
    """The batch bringing the member-editable parts of ``head`` back to ``goal``."""
    ops, state, skipped = rewind(kind, actor, head, goal, head)
    return Plan(ops, state, skipped, Mark("restore", seq, version=version, skipped=skipped))


def clean_label(label: str) -> str:
    """A version label: 1 to ``LABEL_MAX`` printable characters, spaces collapsed."""
    cleaned = " ".join(label.split())
    if not 1 <= len(cleaned) <= LABEL_MAX or not cleaned.isprintable():
        raise HistoryError(INVALID, f"a version label has 1 to {LABEL_MAX} printable characters")
    return cleaned


def summary(kind: RoomKind[Any, Any], ops: Sequence[Any], mark: Mark | None, limit: int = 3) -> str:
    """A human summary of a batch for the history listing."""
    if mark is not None:
        what = {"undo": "undid", "redo": "redid", "restore": "restored"}[mark.action]
        head = f"{what} #{mark.target}" if mark.version is None else f"{what} a named version"
        if mark.skipped:
            head += f" ({mark.skipped} change{'s' if mark.skipped != 1 else ''} skipped)"
        return head
    parts = [kind.describe(op) for op in ops[:limit]]
    if len(ops) > limit:
        parts.append(f"and {len(ops) - limit} more")
    return ", ".join(parts) or "no change"
