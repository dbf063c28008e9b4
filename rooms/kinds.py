"""Room kinds: the pure state machines that ``rooms`` drives.

A room kind (a blend, a mashup, a test kind) says what a room's state is, which ops change it
and who may send them. It knows nothing about sockets, Redis or sequencing; ``rooms`` knows
nothing about music. The contract:

- ``state_type`` is a msgspec Struct: the whole state of one room. It is stored as JSON in
  snapshots and sent to joining clients, so it must round-trip through ``msgspec.json``.
- ``op_type`` is a msgspec tagged union of op Structs (or a single tagged Struct), tagged on the
  field ``op``: ``class Rename(msgspec.Struct, tag_field="op", tag="rename")``. Clients send
  lists of these ops in a batch; the batch is accepted or rejected as a whole.
- ``apply(state, op, actor)`` is a PURE reducer: it returns the new state and must not mutate
  ``state`` (share unchanged parts; copy what changes). It raises ``OpRejected(code, reason)``
  when the op breaks a rule (``"not_found"`` for an op on something already deleted,
  ``"forbidden"`` for an actor whose role does not allow it, ``"invalid"`` for anything else).
  It must be deterministic: every process replays the same batches through it in the same
  order and must reach the same state. It may look at ``actor.role`` for permissions; the
  server actor (``actor.is_server``) is trusted.
- ``exists`` and ``membership`` are the only I/O: the kind looks up, in its own tables,
  whether a room exists and whether (and as what role) a user belongs to it. ``rooms`` calls
  them when a client joins; the role is recorded with every batch so replays see the same
  actor.

Conflicts follow the design: fields are last-writer-wins in ``seq`` order (the reducer simply
overwrites), lists are ordered by fractional index keys (see ``rooms.fractional``), and an op
on something already deleted is rejected with ``not_found``.

Server-side code (a blend regeneration job, a preview renderer) changes a room with
``rooms.submit(services, kind, room_id, ops, op_id)``: its batch goes through the same
sequencing as a client's and reaches members as an ordinary ``batch`` message.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import msgspec

if TYPE_CHECKING:
    from rooms.context import KindContext

S = TypeVar("S", bound=msgspec.Struct)
Op = TypeVar("Op")  # an op Struct, or a union of them

# Batches submitted by the server are stored with this author id, so their op ids are
# idempotent too (a NULL author would never conflict in the unique index).
SERVER_USER_ID = uuid.UUID(int=0)
SERVER_ROLE = "server"
_ROLE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class Membership(msgspec.Struct, frozen=True):
    """A user's standing in a room, as the kind sees it.

    ``role`` is kind-defined: a short token (letters, digits, ``_``, ``-``; at most 32), e.g.
    ``owner``, ``editor``, ``viewer``.
    """

    role: str

    def __post_init__(self) -> None:
        if not _ROLE.fullmatch(self.role):
            raise ValueError(f"invalid role {self.role!r}: a short token is expected")


class Actor(msgspec.Struct, frozen=True):
    """Who sends a batch: a member with the role it had when it joined, or the server."""

    user_id: uuid.UUID
    role: str

    @property
    def is_server(self) -> bool:
        return self.user_id == SERVER_USER_ID


SERVER_ACTOR = Actor(user_id=SERVER_USER_ID, role=SERVER_ROLE)


class OpRejected(Exception):
    """An op breaks the kind's rules; the whole batch is rejected and nothing changes.

    ``code`` is machine-readable and ends up in the client's ``rejected`` message:
    ``not_found``, ``forbidden``, ``conflict`` or ``invalid`` (kinds may add their own
    lower_snake_case codes; document them with the kind).
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class NotInvertible(Exception):
    """The kind keeps no history (``RoomKind.diff`` is not implemented)."""


class RoomKind(Generic[S, Op]):
    """Base class for room kinds. Subclass it and set the class attributes.

    A kind is instantiated once per process (with no arguments) by the registry.
    """

    #: URL segment and ``rooms.kind`` value: lowercase letters, digits, ``-``; at most 32.
    name: ClassVar[str]
    #: The state Struct.
    state_type: ClassVar[type[Any]]
    #: A tagged union of op Structs (tag field ``op``), e.g. ``AddNote | DeleteNote``.
    op_type: ClassVar[Any]
    #: Most ops a client may put in one batch.
    max_batch_ops: ClassVar[int] = 100

    def initial_state(self) -> S:
        """The state of a room nobody has edited yet."""
        raise NotImplementedError

    def apply(self, state: S, op: Op, actor: Actor) -> S:
        """Return the state after ``op``; raise ``OpRejected``. Pure: never mutate ``state``."""
        raise NotImplementedError

    async def exists(self, ctx: KindContext, room_id: uuid.UUID) -> bool:
        """Whether the room exists (e.g. its blend row). Unknown rooms are closed with 4404."""
        raise NotImplementedError

    async def membership(
        self, ctx: KindContext, room_id: uuid.UUID, user_id: uuid.UUID
    ) -> Membership | None:
        """The user's membership, or None when they may not join (closed with 4403)."""
        raise NotImplementedError

    # History (optional): per-member undo and redo, and restoring a named version or an
    # earlier seq (``rooms.history``, docs/rooms.md "History"). A kind that does not override
    # ``diff`` has no history: undo, redo and restore are answered ``not_supported``.

    #: Op types only history batches may carry (e.g. putting back a removed item whole):
    #: a client's ``ops`` message holding one is refused with ``bad_ops``.
    history_only: ClassVar[tuple[type, ...]] = ()

    def diff(self, current: S, target: S, actor: Actor) -> list[Op]:
        """Ops that ``actor`` may send to turn the member-editable parts of ``current`` into
        those of ``target``, each op touching one part (see ``touched``).

        Parts only the server changes (members, inputs, rendered previews, ...) are left out:
        history never changes them. The ops are tried in order, and ones that fail are retried
        after the others, so their order matters only for speed. Raise ``NotInvertible`` if
        the kind has no history.
        """
        raise NotInvertible(f"{self.name} rooms keep no history")

    def touched(self, state: S, op: Op, actor: Actor) -> object:
        """The part of ``state`` that ``op`` (one of ``diff``'s ops) overwrites, as a value
        that compares equal exactly when that part is the same (None when it is absent).

        This is the conflict rule: an undo puts a part back only where the room still shows
        what the undone batch left there, so it never overwrites a later edit by someone else.
        """
        raise NotInvertible(f"{self.name} rooms keep no history")

    def invert(self, before: S, ops: list[Op], actor: Actor) -> list[Op]:
        """The ops that undo the batch ``ops`` applied to ``before``: by default the ``diff``
        from the state after the batch back to ``before`` (raises ``NotInvertible``, or
        ``OpRejected`` when the batch does not apply to ``before``)."""
        return self.diff(self.apply_batch(before, ops, actor), before, actor)

    def on_behalf_of(self, op: Op) -> uuid.UUID | None:
        """For a server op made at a member's request (a generated timeline): that member,
        whose undo stack the server batch then joins. None for everything else."""
        return None

    def may_edit(self, state: S, actor: Actor) -> bool:
        """Whether ``actor`` may change the room at all (viewers may not undo or restore)."""
        return True

    def describe(self, op: Op) -> str:
        """A short human summary of one op, for the history listing."""
        tag = getattr(getattr(op, "__struct_config__", None), "tag", None)
        return str(tag or type(op).__name__).replace("_", " ")

    # Helpers the machinery uses; kinds do not override them.

    def apply_batch(self, state: S, ops: list[Op], actor: Actor) -> S:
        for op in ops:
            state = self.apply(state, op, actor)
        return state
