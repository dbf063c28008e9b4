"""The blend room kind: the live, shared playlist of one blend.

State: the blend's name, owner and settings, its accepted members, the ordered playlist (each
item with a fractional index key, its attribution and the members' reactions), each member's
library of songs they may add, and the latest taste match. The room id is the blend id.

Client ops (docs/blends.md lists them with their rejection codes): ``reorder``, ``remove``,
``add`` (a song from the sender's own library), ``react`` and ``rename`` (owner only); history
batches (undo, redo, restore) may also carry ``put_item``, which clients may not send. The
server sends ``sync`` (name, settings, members) and ``woven`` (a regenerated playlist); clients
may not. The reducer is pure; ``exists`` and ``membership`` read the blend tables.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from rooms import fractional
from rooms.kinds import Actor, Membership, OpRejected, RoomKind
from server.blends.schemas import BlendSettings
from server.blends.weave import SongRef, TasteMatch, Weave, WovenTrack

if TYPE_CHECKING:
    from rooms.context import KindContext

KIND = "blend"
# Reactions a member may leave on a track (one per member per track; null clears it).
EMOJI = ("❤️", "🔥", "😍", "😂", "😮", "😢", "👍", "👎", "🎉", "💤")
MAX_ITEMS = 500
MAX_ITEM_ID = 64
# Songs per member the room offers for ``add``: the member's best-loved ones.
LIBRARY_SIZE = 30

# Letters, digits and . _ : - (a UUID fits), so ids are safe to log, store and show.
ItemId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_ITEM_ID, pattern=r"^[A-Za-z0-9._:-]+$")
]


class Song(SongRef, frozen=True, kw_only=True):
    key: str  # identity after de-duplication (ISRC or normalised title and artist)
    source: str = "catalog"


class LibrarySong(msgspec.Struct, frozen=True, kw_only=True):
    song: Song
    contributors: list[uuid.UUID]  # every member who holds it


class Item(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    index: str  # fractional key; the playlist is sorted by (index, id)
    song: Song
    contributed_by: uuid.UUID
    contributors: list[uuid.UUID]
    added_by: uuid.UUID | None = None  # None: woven by the server
    reactions: dict[str, str] = {}  # member id -> emoji


class RoomMember(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    username: str
    display_name: str | None = None
    role: Literal["owner", "member"] = "member"


class BlendRoomState(msgspec.Struct, frozen=True, kw_only=True):
    name: str = ""
    owner_id: uuid.UUID | None = None
    settings: BlendSettings = BlendSettings()
    members: list[RoomMember] = []
    items: list[Item] = []
    library: dict[str, list[LibrarySong]] = {}  # member id -> songs they may add
    taste_match: TasteMatch | None = None
    generation: int = 0  # the newest weave the room has seen (a clock reading, in µs)


# ------------------------------------------------------------------ ops


class _Op(msgspec.Struct, frozen=True, tag_field="op", forbid_unknown_fields=True):
    pass


class Reorder(
    msgspec.Struct, frozen=True, tag_field="op", tag="reorder", forbid_unknown_fields=True
):
    item: str
    index: str


class Remove(_Op, frozen=True, tag="remove"):
    item: str


class Add(_Op, frozen=True, tag="add"):
    item: ItemId  # the new item's id, chosen by the client (a UUID, say)
    song: str  # a key from the sender's library
    index: str


class React(_Op, frozen=True, tag="react"):
    item: str
    emoji: str | None  # None clears the sender's reaction


class Rename(_Op, frozen=True, tag="rename"):
    name: str


class PutItem(_Op, frozen=True, tag="put_item"):
    """History only: put an item back whole (an undone removal, a restored version), or
    replace it with its earlier self. Clients may not send it (``bad_ops``): it carries the
    song and attribution, which a client's ``add`` takes from the sender's library."""

    item: Item


class Sync(_Op, frozen=True, tag="sync"):
    """Server only: the blend's owner, settings and accepted members, and maybe its name.

    ``name`` is set when the name changed over REST (and on creation); otherwise the room keeps
    its own (members rename in the room), and ``default_name`` only fills an empty one.
    ``generation`` is set on the sync that goes with a weave: weaves may reach the room out of
    order (each process tells the room after letting go of the blend), so one older than the
    room's is ignored, with its sync.
    """

    name: str | None
    default_name: str
    owner_id: uuid.UUID
    settings: BlendSettings
    members: list[RoomMember]
    generation: int | None = None


class Woven(_Op, frozen=True, tag="woven"):
    """Server only: a regenerated playlist (replaces the woven items, keeps members' adds)."""

    generation: int
    items: list[Item]
    library: dict[str, list[LibrarySong]]
    taste_match: TasteMatch


BlendOp = Reorder | Remove | Add | React | Rename | PutItem | Sync | Woven


# ------------------------------------------------------------------ the reducer


def _sorted(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (i.index, i.id))


def _find(state: BlendRoomState, item_id: str) -> int:
    for n, item in enumerate(state.items):
        if item.id == item_id:
            return n
    raise OpRejected("not_found", f"no item {item_id!r} in the playlist (it may be removed)")


def _check_index(index: str) -> None:
    if not fractional.is_valid_key(index):
        raise OpRejected("invalid", f"invalid fractional index {index[:40]!r}")


def _replace(items: list[Item], n: int, item: Item) -> list[Item]:
    return [*items[:n], item, *items[n + 1 :]]


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 100 or not cleaned.isprintable():
        raise OpRejected("invalid", "a blend name has 1 to 100 printable characters")
    return cleaned


def reduce(state: BlendRoomState, op: BlendOp, actor: Actor) -> BlendRoomState:
    """The pure reducer (see the module docstring and docs/blends.md)."""
    if isinstance(op, Sync | Woven):
        if not actor.is_server:
            raise OpRejected("forbidden", f"only the server sends {type(op).__name__.lower()}")
        return _apply_server(state, op)
    if not actor.is_server and all(m.user_id != actor.user_id for m in state.members):
        raise OpRejected("forbidden", "you are no longer a member of this blend")
    if isinstance(op, Rename):
        if not actor.is_server and actor.role != "owner":
            raise OpRejected("forbidden", "only the blend's owner may rename it")
        return msgspec.structs.replace(state, name=_clean_name(op.name))
    if isinstance(op, Reorder):
        n = _find(state, op.item)
        _check_index(op.index)
        moved = msgspec.structs.replace(state.items[n], index=op.index)
        return msgspec.structs.replace(state, items=_sorted(_replace(state.items, n, moved)))
    if isinstance(op, Remove):
        n = _find(state, op.item)
        return msgspec.structs.replace(state, items=[*state.items[:n], *state.items[n + 1 :]])
    if isinstance(op, React):
        n = _find(state, op.item)
        item = state.items[n]
        reactions = dict(item.reactions)
        if op.emoji is None:
            reactions.pop(str(actor.user_id), None)
        elif op.emoji in EMOJI:
            reactions[str(actor.user_id)] = op.emoji
        else:
            raise OpRejected("invalid", f"reactions are one of {' '.join(EMOJI)}")
        reacted = msgspec.structs.replace(item, reactions=reactions)
        return msgspec.structs.replace(state, items=_replace(state.items, n, reacted))
    if isinstance(op, Add):
        return _add(state, op, actor)
    if isinstance(op, PutItem):
        return _put(state, op.item)
    raise OpRejected("invalid", "unknown op")  # pragma: no cover - the union is exhaustive


def _add(state: BlendRoomState, op: Add, actor: Actor) -> BlendRoomState:
    _check_index(op.index)
    if any(item.id == op.item for item in state.items):
        raise OpRejected("conflict", f"an item {op.item!r} already exists")
    if len(state.items) >= MAX_ITEMS:
        raise OpRejected("invalid", f"a blend playlist holds at most {MAX_ITEMS} tracks")
    mine = state.library.get(str(actor.user_id), [])
    found = next((s for s in mine if s.song.key == op.song), None)
    if found is None:
        raise OpRejected("not_found", "that song is not in your library for this blend")
    if any(item.song.key == op.song for item in state.items):
        raise OpRejected("duplicate", "that song is already in the playlist")
    others = [m for m in found.contributors if m != actor.user_id]
    item = Item(
        id=op.item,
        index=op.index,
        song=found.song,
        contributed_by=actor.user_id,
        contributors=[actor.user_id, *others],
        added_by=actor.user_id,
    )
    return msgspec.structs.replace(state, items=_sorted([*state.items, item]))


def _put(state: BlendRoomState, item: Item) -> BlendRoomState:
    _check_index(item.index)
    if any(i.song.key == item.song.key and i.id != item.id for i in state.items):
        raise OpRejected("duplicate", "that song is already in the playlist")
    items = [i for i in state.items if i.id != item.id]
    if len(items) >= MAX_ITEMS:
        raise OpRejected("invalid", f"a blend playlist holds at most {MAX_ITEMS} tracks")
    return msgspec.structs.replace(state, items=_sorted([*items, item]))


def _apply_server(state: BlendRoomState, op: Sync | Woven) -> BlendRoomState:
    if op.generation is not None and op.generation < state.generation:
        return state  # an older weave, told after a newer one
    if isinstance(op, Sync):
        return msgspec.structs.replace(
            state,
            name=op.name if op.name is not None else (state.name or op.default_name),
            owner_id=op.owner_id,
            settings=op.settings,
            members=op.members,
        )
    # Reactions follow their song into the new weave; songs members added by hand stay, after
    # the woven ones, unless the weave now holds them too.
    reactions = {item.song.key: item.reactions for item in state.items if item.reactions}
    woven = [
        msgspec.structs.replace(item, reactions=reactions.get(item.song.key, item.reactions))
        for item in _sorted(op.items)
    ]
    keys = {item.song.key for item in woven}
    kept = [i for i in state.items if i.added_by is not None and i.song.key not in keys]
    last = woven[-1].index if woven else None
    indices = fractional.keys_between(last, None, len(kept))
    kept = [msgspec.structs.replace(i, index=k) for i, k in zip(kept, indices, strict=True)]
    return msgspec.structs.replace(
        state,
        items=_sorted([*woven, *kept]),
        library=op.library,
        taste_match=op.taste_match,
        generation=op.generation,
    )


# ------------------------------------------------------------------ history


def diff(current: BlendRoomState, target: BlendRoomState, actor: Actor) -> list[BlendOp]:
    """Ops ``actor`` may send to turn the playlist and name of ``current`` into ``target``'s
    (members, settings, libraries and the taste match belong to the server).

    An item that only moved is reordered and the actor's own reaction is set with ``react``,
    so an undo of either skips only that; any other change puts the whole item back.
    Removals come first, so a song put back is never refused as a duplicate of itself.
    """
    me = str(actor.user_id)
    ops: list[BlendOp] = []
    now = {item.id: item for item in current.items}
    then = {item.id: item for item in target.items}
    ops += [Remove(item=item_id) for item_id in now if item_id not in then]
    if current.name != target.name and target.name:
        ops.append(Rename(name=target.name))
    for item_id, goal in then.items():
        item = now.get(item_id)
        if item is None:
            ops.append(PutItem(item=goal))
            continue
        if item == goal:
            continue
        if _without(item, me) != _without(goal, me):
            ops.append(PutItem(item=goal))
            continue
        if item.index != goal.index:
            ops.append(Reorder(item=item_id, index=goal.index))
        if item.reactions.get(me) != goal.reactions.get(me):
            ops.append(React(item=item_id, emoji=goal.reactions.get(me)))
    return ops


def _without(item: Item, member: str) -> Item:
    """The item but for its position and ``member``'s reaction."""
    reactions = {k: v for k, v in item.reactions.items() if k != member}
    return msgspec.structs.replace(item, index="", reactions=reactions)


def touched(state: BlendRoomState, op: BlendOp, actor: Actor) -> object:
    """The part of the state ``op`` overwrites (see ``RoomKind.touched``)."""
    if isinstance(op, Rename):
        return state.name
    item_id = op.item.id if isinstance(op, PutItem) else getattr(op, "item", None)
    if not isinstance(item_id, str):
        return state  # a server op: everything (history never makes one)
    item = next((i for i in state.items if i.id == item_id), None)
    if item is None:
        return None
    # An item's position or reaction is that *of its song*: another song put under the same
    # id since (removed and added again) is another item, even at the same place.
    if isinstance(op, Reorder):
        return (item.song.key, item.index)
    if isinstance(op, React):
        return (item.song.key, item.reactions.get(str(actor.user_id)))
    return item  # remove, put_item, add: the whole item


def describe(op: BlendOp) -> str:
    """A short human summary of one op (the history listing)."""
    if isinstance(op, Add):
        return f"added item {op.item}"
    if isinstance(op, PutItem):
        return f"put back {op.item.song.name} by {op.item.song.artist}"
    if isinstance(op, Remove):
        return f"removed item {op.item}"
    if isinstance(op, Reorder):
        return f"moved item {op.item}"
    if isinstance(op, React):
        return f"reacted {op.emoji} to item {op.item}" if op.emoji else "cleared a reaction"
    if isinstance(op, Rename):
        return f"renamed the blend to {op.name!r}"
    if isinstance(op, Woven):
        return f"regenerated the playlist ({len(op.items)} tracks)"
    return "updated the blend's members and settings"


# ------------------------------------------------------------------ building server ops


def song_of(track: WovenTrack) -> Song:
    return msgspec.convert(track, Song, from_attributes=True)


def woven_op(result: Weave, generation: int) -> Woven:
    """The ``woven`` op for a weave: items get ids ``g<generation>.<n>`` and spread keys."""
    indices = fractional.keys_between(None, None, len(result.tracks))
    items = [
        Item(
            id=f"g{generation}.{n}",
            index=index,
            song=song_of(track),
            contributed_by=track.contributed_by,
            contributors=list(track.contributors),
        )
        for n, (track, index) in enumerate(zip(result.tracks, indices, strict=True))
    ]
    library = {
        str(member): [
            LibrarySong(song=song_of(t), contributors=list(t.contributors))
            for t in tracks[:LIBRARY_SIZE]
        ]
        for member, tracks in result.libraries.items()
    }
    return Woven(
        generation=generation, items=items, library=library, taste_match=result.taste_match
    )


# ------------------------------------------------------------------ the kind


class BlendRoom(RoomKind[BlendRoomState, BlendOp]):
    name = KIND
    state_type = BlendRoomState
    op_type = BlendOp
    max_batch_ops = 50

    def initial_state(self) -> BlendRoomState:
        return BlendRoomState()

    def apply(self, state: BlendRoomState, op: BlendOp, actor: Actor) -> BlendRoomState:
        return reduce(state, op, actor)

    history_only = (PutItem,)

    def diff(self, current: BlendRoomState, target: BlendRoomState, actor: Actor) -> list[BlendOp]:
        return diff(current, target, actor)

    def touched(self, state: BlendRoomState, op: BlendOp, actor: Actor) -> object:
        return touched(state, op, actor)

    def may_edit(self, state: BlendRoomState, actor: Actor) -> bool:
        return any(m.user_id == actor.user_id for m in state.members)

    def describe(self, op: BlendOp) -> str:
        return describe(op)

    async def exists(self, services: KindContext, room_id: uuid.UUID) -> bool:
        found = await services.pool.fetchval("SELECT 1 FROM blends WHERE id = $1", room_id)
        return found is not None

    async def membership(
        self, services: KindContext, room_id: uuid.UUID, user_id: uuid.UUID
    ) -> Membership | None:
        row = await services.pool.fetchrow(
            """
            SELECT b.created_by = p.user_id AS is_owner FROM blend_participants p
            JOIN blends b ON b.id = p.blend_id
            WHERE p.blend_id = $1 AND p.user_id = $2 AND p.status = 'accepted'
            """,
            room_id,
            user_id,
        )
        if row is None:
            return None
        return Membership(role="owner" if row["is_owner"] else "member")
