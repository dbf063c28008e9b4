"""History of the blend room kind, as pure properties: undo, redo and restore through
``rooms.history`` on random playlists (docs/rooms.md, "History")."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rooms.kinds import OpRejected
from server.blends import room
from server.blends.room import BlendOp, BlendRoom
from tests.blends.test_room_kind import FRIEND, OWNER, friend, outsider, owner, woven_room
from tests.rooms.history_model import Log, undo_among_others, undo_then_redo

KIND = BlendRoom()
_ops = msgspec.json.Decoder(list[BlendOp])
ITEMS = ("g1.0", "g1.1", "g1.2", "g1.3", "n1", "n2")
EMOJI = (None, "🔥", "❤️")


def songs(member: Any) -> list[str]:
    return [s.song.key for s in woven_room().library[str(member)]][:8]


# Added items share order keys with reorders, so that an item removed and added again (as
# another song under the same id) often sits where an undone reorder left the old one.
index = st.sampled_from(["0V", "A", "B", "V", "W", "k", "zz"])
raw_op = st.one_of(
    st.builds(lambda i, k: {"op": "reorder", "item": i, "index": k}, st.sampled_from(ITEMS), index),
    st.builds(lambda i: {"op": "remove", "item": i}, st.sampled_from(ITEMS)),
    st.builds(
        lambda i, n, k: {"op": "add", "item": i, "song": f"#{n}", "index": k},
        st.sampled_from(["n1", "n2"]),
        st.integers(0, 7),
        index,
    ),
    st.builds(
        lambda i, e: {"op": "react", "item": i, "emoji": e},
        st.sampled_from(ITEMS),
        st.sampled_from(EMOJI),
    ),
    st.builds(lambda n: {"op": "rename", "name": n}, st.sampled_from(["Mix", "Sunday", "Go"])),
)


def decode(raw: list[dict[str, Any]], member: Any) -> list[Any]:
    # ``add`` names a song of the sender's own library by its place in it.
    mine = songs(member)
    for op in raw:
        if op["op"] == "add" and op["song"].startswith("#"):
            op["song"] = mine[int(op["song"][1:])]
    return list(_ops.decode(msgspec.json.encode(raw)))


batch = st.lists(raw_op, min_size=1, max_size=3)


def edits(log: Log, who: Any, batches: list[list[dict[str, Any]]]) -> list[int]:
    return [log.seq for raw in batches if log.edit(who, decode(raw, who.user_id))]


@settings(max_examples=150, deadline=None)
@given(st.lists(batch, min_size=1, max_size=12), st.data())
def test_alone_undo_returns_every_earlier_state_and_redo_returns_again(
    batches: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    log = Log(KIND, woven_room())
    seqs = edits(log, owner, batches)
    if not seqs:
        return
    undos = data.draw(st.integers(1, len(seqs)))
    undo_then_redo(log, owner, seqs, undos, data.draw(st.integers(0, undos)))


# Found by reasoning from the mashup case: the owner's undone reorder must not move the
# other song the friend has since put under the same id, at the same place.
@example(
    [{"op": "reorder", "item": "g1.0", "index": "k"}],
    [[{"op": "remove", "item": "g1.0"}, {"op": "add", "item": "g1.0", "song": "#5", "index": "k"}]],
)
@settings(max_examples=150, deadline=None)
@given(batch, st.lists(batch, max_size=6))
def test_with_others_undo_never_overwrites_their_later_edits(
    mine: list[dict[str, Any]], theirs: list[list[dict[str, Any]]]
) -> None:
    log = Log(KIND, woven_room())
    if not log.edit(owner, decode(mine, OWNER)):
        return
    target = log.seq
    edits(log, friend, theirs)
    undo_among_others(log, owner, friend, target)


@settings(max_examples=100, deadline=None)
@given(st.lists(batch, min_size=1, max_size=10), st.data())
def test_restore_reproduces_the_playlist_and_is_undoable(
    batches: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    log = Log(KIND, woven_room())
    edits(log, owner, batches[: len(batches) // 2])
    edits(log, friend, batches[len(batches) // 2 :])
    seq = data.draw(st.integers(0, log.seq))
    before = log.head
    plan = log.restore(owner, seq)
    assert plan.skipped == 0
    assert log.head == log.states[seq]
    log.undo(owner)
    assert log.head == before


def test_an_undone_removal_puts_the_item_back_whole() -> None:
    log = Log(KIND, woven_room())
    assert log.edit(friend, decode([{"op": "react", "item": "g1.2", "emoji": "🔥"}], FRIEND))
    whole = next(i for i in log.head.items if i.id == "g1.2")
    assert log.edit(owner, decode([{"op": "remove", "item": "g1.2"}], OWNER))
    plan = log.undo(owner)
    assert plan.ops == [room.PutItem(item=whole)]
    assert next(i for i in log.head.items if i.id == "g1.2") == whole
    # A reaction of someone else since an add keeps the item from being removed by an undo.
    assert log.edit(owner, decode([{"op": "add", "item": "n1", "song": "#5", "index": "W"}], OWNER))
    assert log.edit(friend, decode([{"op": "react", "item": "n1", "emoji": "❤️"}], FRIEND))
    plan = log.undo(owner)
    assert (plan.ops, plan.skipped) == ([], 1)
    assert any(i.id == "n1" for i in log.head.items)


def test_put_item_is_history_only_and_checked() -> None:
    state = woven_room()
    assert room.PutItem in KIND.history_only
    item = state.items[0]
    # Not a member: refused like any op; a second item with the same song: a duplicate.
    with pytest.raises(OpRejected) as info:
        KIND.apply(state, room.PutItem(item=item), outsider)
    assert info.value.code == "forbidden"
    twin = msgspec.structs.replace(item, id="twin")
    with pytest.raises(OpRejected) as info:
        KIND.apply(state, room.PutItem(item=twin), owner)
    assert info.value.code == "duplicate"
    assert not KIND.may_edit(state, outsider) and KIND.may_edit(state, friend)
