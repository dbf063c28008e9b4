"""A room's op log in memory, driven through the pure history core exactly as
``rooms.history_store`` drives it, for the property tests of every room kind."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from rooms import history
from rooms.kinds import Actor, OpRejected, RoomKind


@dataclass
class Logged:
    actor: Actor
    ops: list[Any]
    mark: history.Mark | None


class Log:
    """The states at every seq and the batches between them."""

    def __init__(self, kind: RoomKind[Any, Any], state: Any) -> None:
        self.kind = kind
        self.states = [state]  # states[seq]
        self.batches: list[Logged | None] = [None]
        self.decoder = msgspec.json.Decoder(list[kind.op_type])  # type: ignore[name-defined]

    @property
    def head(self) -> Any:
        return self.states[-1]

    @property
    def seq(self) -> int:
        return len(self.states) - 1

    def edit(self, actor: Actor, ops: list[Any]) -> bool:
        """A client's (or the server's) batch; False when the kind rejects it."""
        try:
            state = self.kind.apply_batch(self.head, ops, actor)
        except OpRejected:
            return False
        self._append(actor, ops, None, state)
        return True

    def records(self, user: uuid.UUID) -> list[history.Record]:
        out = []
        for seq, batch in enumerate(self.batches):
            if batch is None:
                continue
            mine = batch.actor.user_id == user or (
                batch.actor.is_server
                and any(self.kind.on_behalf_of(op) == user for op in batch.ops)
            )
            if mine:
                out.append(history.Record(seq, batch.mark))
        return out

    def undo(self, actor: Actor, action: str = "undo") -> history.Plan:
        target = history.target_of(action, self.records(actor.user_id))  # type: ignore[arg-type]
        plan = history.plan_undo(
            self.kind,
            actor,
            target,
            self.states[target - 1],
            self.states[target],
            self.head,
            action,  # type: ignore[arg-type]
        )
        self._commit(actor, plan)
        return plan

    def redo(self, actor: Actor) -> history.Plan:
        return self.undo(actor, "redo")

    def restore(self, actor: Actor, seq: int) -> history.Plan:
        plan = history.plan_restore(self.kind, actor, seq, self.states[seq], self.head)
        self._commit(actor, plan)
        return plan

    def _commit(self, actor: Actor, plan: history.Plan) -> None:
        # What is stored is JSON, replayed by every process and client: it must lead to the
        # very state the plan computed.
        stored = self.decoder.decode(msgspec.json.encode(plan.ops))
        replayed = self.kind.apply_batch(self.head, stored, actor)
        assert replayed == plan.state
        assert msgspec.json.encode(replayed) == msgspec.json.encode(plan.state)
        self._append(actor, stored, plan.mark, plan.state)

    def _append(self, actor: Actor, ops: list[Any], mark: history.Mark | None, state: Any) -> None:
        self.batches.append(Logged(actor, ops, mark))
        self.states.append(state)


def others_kept(
    kind: RoomKind[Any, Any], actor: Actor, after: Any, head: Any, undone: Any
) -> list[Any]:
    """The parts someone else changed between ``after`` (right after the undone batch) and
    ``head`` that the undo changed anyway: must be empty (the documented rule)."""
    changed = kind.diff(after, head, actor)
    return [
        op for op in changed if kind.touched(undone, op, actor) != kind.touched(head, op, actor)
    ]


def undo_then_redo(log: Log, actor: Actor, seqs: list[int], undos: int, redos: int) -> None:
    """One member alone made the batches ``seqs``: ``undos`` undos return the exact states
    before them, ``redos`` redos the exact states after, and undo goes all the way back."""
    states = [log.states[s - 1] for s in seqs] + [log.head]
    for n in range(undos):
        assert log.undo(actor).skipped == 0
        assert log.head == states[len(seqs) - n - 1]
    for n in range(redos):
        assert log.redo(actor).skipped == 0
        assert log.head == states[len(seqs) - undos + n + 1]
    while True:
        try:
            log.undo(actor)
        except history.HistoryError as exc:
            assert exc.code == history.NOTHING_TO_UNDO
            break
    assert log.head == states[0]


def undo_among_others(log: Log, me: Actor, other: Actor, target: int) -> None:
    """``me`` made the batch ``target``, then only ``other`` edited: my undo (and redo) leave
    every part ``other`` changed since as ``other`` left it, and where ``other`` changed
    nothing they are exact."""
    after, head = log.states[target], log.head
    plan = log.undo(me)
    assert plan.mark == history.Mark("undo", target, skipped=plan.skipped)
    assert others_kept(log.kind, other, after, head, log.head) == []
    if head == after:
        assert plan.skipped == 0
        assert log.head == log.states[target - 1]
    log.redo(me)
    assert others_kept(log.kind, other, after, head, log.head) == []
    if head == after:
        assert log.head == after
