"""A small room kind for the rooms tests: a titled list of notes.

Membership lives in a Redis hash ``<prefix>test-notes:<room id>`` (user id -> role), which the
tests fill in; a room exists while that hash does. Roles: ``editor`` may do anything,
``viewer`` may only set presence.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import msgspec

from rooms import fractional
from rooms.kinds import Actor, Membership, OpRejected, RoomKind

if TYPE_CHECKING:
    from rooms.context import KindContext


class Note(msgspec.Struct, frozen=True):
    id: str
    index: str
    text: str
    author: uuid.UUID


class NotesState(msgspec.Struct):
    title: str = ""
    notes: dict[str, Note] = msgspec.field(default_factory=dict)


class Add(msgspec.Struct, tag_field="op", tag="add"):
    id: str
    index: str
    text: str


class Edit(msgspec.Struct, tag_field="op", tag="edit"):
    id: str
    text: str


class Delete(msgspec.Struct, tag_field="op", tag="delete"):
    id: str


class Title(msgspec.Struct, tag_field="op", tag="title"):
    title: str


NoteOp = Add | Edit | Delete | Title


def members_key(services_or_prefix: object, room_id: uuid.UUID) -> str:
    prefix = getattr(getattr(services_or_prefix, "keys", None), "prefix", services_or_prefix)
    return f"{prefix}test-notes:{room_id}"


class NotesKind(RoomKind[NotesState, NoteOp]):
    name = "notes"
    state_type = NotesState
    op_type = NoteOp
    max_batch_ops = 20

    def initial_state(self) -> NotesState:
        return NotesState()

    def apply(self, state: NotesState, op: NoteOp, actor: Actor) -> NotesState:
        if not actor.is_server and actor.role != "editor":
            raise OpRejected("forbidden", "viewers cannot edit")
        if isinstance(op, Title):
            return NotesState(title=op.title, notes=state.notes)
        notes = dict(state.notes)
        if isinstance(op, Add):
            if op.id in notes:
                raise OpRejected("conflict", f"note {op.id} exists")
            if not fractional.is_valid_key(op.index):
                raise OpRejected("invalid", "bad index")
            notes[op.id] = Note(op.id, op.index, op.text, actor.user_id)
        elif isinstance(op, Edit):
            note = notes.get(op.id)
            if note is None:
                raise OpRejected("not_found", f"note {op.id} does not exist")
            notes[op.id] = msgspec.structs.replace(note, text=op.text)
        else:
            if notes.pop(op.id, None) is None:
                raise OpRejected("not_found", f"note {op.id} does not exist")
        return NotesState(title=state.title, notes=notes)

    async def exists(self, services: KindContext, room_id: uuid.UUID) -> bool:
        return bool(await services.redis.exists(members_key(services, room_id)))

    async def membership(
        self, services: KindContext, room_id: uuid.UUID, user_id: uuid.UUID
    ) -> Membership | None:
        role = await services.redis.hget(members_key(services, room_id), str(user_id))
        if role is None:
            return None
        return Membership(role=role.decode() if isinstance(role, bytes) else role)
