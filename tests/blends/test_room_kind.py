"""The blend room kind as a pure reducer: its rules, permissions and rejections."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rooms import fractional
from rooms.context import RoomSettings
from rooms.kinds import SERVER_ACTOR, Actor, OpRejected
from rooms.registry import load_kinds
from server.blends import room
from server.blends.room import (
    Add,
    BlendRoom,
    BlendRoomState,
    React,
    Remove,
    Rename,
    Reorder,
    RoomMember,
    Sync,
    Woven,
)
from server.blends.schemas import BlendSettings
from server.blends.weave import MemberTaste, TasteEntry, weave
from server.settings import Settings

OWNER, FRIEND, OUTSIDER = (uuid.UUID(int=i) for i in (1, 2, 3))
owner = Actor(user_id=OWNER, role="owner")
friend = Actor(user_id=FRIEND, role="member")
outsider = Actor(user_id=OUTSIDER, role="member")
KIND = BlendRoom()


def taste(member: uuid.UUID, prefix: str, count: int) -> MemberTaste:
    return MemberTaste(
        member,
        [
            TasteEntry(
                track_id=f"{prefix}{i}", name=f"{prefix} {i}", artist=prefix, score=1 / (i + 1)
            )
            for i in range(count)
        ],
    )


def woven_room(length: int = 6) -> BlendRoomState:
    state = KIND.initial_state()
    sync = Sync(
        name="Mix",
        default_name="Mix",
        owner_id=OWNER,
        settings=BlendSettings(playlist_length=length),
        members=[
            RoomMember(user_id=OWNER, username="o", role="owner"),
            RoomMember(user_id=FRIEND, username="f"),
        ],
    )
    result = weave([taste(OWNER, "own", 10), taste(FRIEND, "fri", 10)], length)
    return KIND.apply_batch(state, [sync, room.woven_op(result, 1)], SERVER_ACTOR)


def rejected(state: BlendRoomState, op: room.BlendOp, actor: Actor) -> str:
    with pytest.raises(OpRejected) as info:
        KIND.apply(state, op, actor)
    return info.value.code


def test_the_kind_is_registered_and_round_trips() -> None:
    assert isinstance(load_kinds(RoomSettings.pick(Settings()))["blend"], BlendRoom)
    state = woven_room()
    encoded = msgspec.json.encode(state)
    assert msgspec.json.decode(encoded, type=BlendRoomState) == state
    ops = msgspec.json.decode(
        b'[{"op":"reorder","item":"g1.0","index":"z"},{"op":"react","item":"g1.0","emoji":null}]',
        type=list[KIND.op_type],  # type: ignore[name-defined]
    )
    assert ops == [Reorder(item="g1.0", index="z"), React(item="g1.0", emoji=None)]
    # New item ids are plain (letters, digits, . _ : -); anything else fails to decode.
    for bad in ('"item":"a b"', '"item":""', '"item":"nul\\u0000"', f'"item":"{"x" * 65}"'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(
                ('[{"op":"add","song":"s","index":"V",' + bad + "}]").encode(),
                type=list[KIND.op_type],  # type: ignore[name-defined]
            )


def test_woven_playlist_arrives_ordered_and_attributed() -> None:
    state = woven_room()
    assert state.name == "Mix" and state.generation == 1
    assert [i.index for i in state.items] == sorted(i.index for i in state.items)
    assert [i.contributed_by for i in state.items] == [OWNER, FRIEND] * 3
    assert set(state.library) == {str(OWNER), str(FRIEND)}


def test_reorder_remove_react_and_rename() -> None:
    state = woven_room()
    first, last = state.items[0], state.items[-1]
    moved = KIND.apply(
        state, Reorder(item=first.id, index=fractional.key_between(last.index, None)), friend
    )
    assert moved.items[-1].id == first.id and len(moved.items) == len(state.items)
    assert state.items[0].id == first.id  # the old state is untouched

    reacted = KIND.apply(moved, React(item=first.id, emoji="🔥"), friend)
    reacted = KIND.apply(reacted, React(item=first.id, emoji="❤️"), owner)
    item = next(i for i in reacted.items if i.id == first.id)
    assert item.reactions == {str(FRIEND): "🔥", str(OWNER): "❤️"}
    cleared = KIND.apply(reacted, React(item=first.id, emoji=None), friend)
    assert next(i for i in cleared.items if i.id == first.id).reactions == {str(OWNER): "❤️"}

    removed = KIND.apply(cleared, Remove(item=first.id), friend)
    assert first.id not in {i.id for i in removed.items}
    # Ops on something already deleted are rejected.
    for op in (
        Remove(item=first.id),
        Reorder(item=first.id, index="V"),
        React(item=first.id, emoji="🔥"),
    ):
        assert rejected(removed, op, owner) == "not_found"

    renamed = KIND.apply(removed, Rename(name="  Late   night "), owner)
    assert renamed.name == "Late night"
    assert rejected(renamed, Rename(name="Mine"), friend) == "forbidden"
    assert rejected(renamed, Rename(name="   "), owner) == "invalid"
    assert rejected(renamed, Rename(name="nul\x00"), owner) == "invalid"
    assert rejected(renamed, Rename(name="x" * 101), owner) == "invalid"


def test_add_only_from_your_own_library() -> None:
    state = woven_room(length=4)
    mine = state.library[str(FRIEND)]
    placed = {i.song.key for i in state.items}
    spare = next(s for s in mine if s.song.key not in placed)
    added = KIND.apply(state, Add(item="x1", song=spare.song.key, index="zz"), friend)
    new = added.items[-1]
    assert (new.id, new.added_by, new.contributed_by) == ("x1", FRIEND, FRIEND)
    assert new.song == spare.song
    # Another member's song, a song already placed, a taken id, a bad index.
    owners_song = next(s for s in state.library[str(OWNER)] if s.song.key not in placed)
    assert (
        rejected(added, Add(item="x2", song=owners_song.song.key, index="zz"), friend)
        == "not_found"
    )
    assert rejected(added, Add(item="x2", song=spare.song.key, index="zy"), friend) == "duplicate"
    other = next(s for s in mine if s.song.key not in placed | {spare.song.key})
    assert rejected(added, Add(item="x1", song=other.song.key, index="zy"), friend) == "conflict"
    assert rejected(added, Add(item="x3", song=other.song.key, index="a0"), friend) == "invalid"
    assert rejected(added, React(item="x1", emoji="🍕"), friend) == "invalid"


def test_members_only_and_server_only_ops() -> None:
    state = woven_room()
    item = state.items[0].id
    # Someone who left (or was removed) after joining the room can no longer edit.
    assert rejected(state, Remove(item=item), outsider) == "forbidden"
    sync = Sync(name=None, default_name="x", owner_id=OWNER, settings=BlendSettings(), members=[])
    assert rejected(state, sync, owner) == "forbidden"
    woven = Woven(generation=9, items=[], library={}, taste_match=state.taste_match)  # type: ignore[arg-type]
    assert rejected(state, woven, owner) == "forbidden"
    # A sync without a name keeps the room's (members renamed it there).
    renamed = KIND.apply(state, Rename(name="Ours"), owner)
    assert KIND.apply(renamed, sync, SERVER_ACTOR).name == "Ours"
    assert KIND.apply(renamed, sync, SERVER_ACTOR).members == []


def test_regeneration_keeps_reactions_and_hand_added_songs() -> None:
    state = woven_room(length=4)
    placed = {i.song.key for i in state.items}
    spare = next(s for s in state.library[str(FRIEND)] if s.song.key not in placed)
    state = KIND.apply(state, Add(item="mine", song=spare.song.key, index="V"), friend)
    kept_key = state.items[0].song.key
    state = KIND.apply(state, React(item=state.items[0].id, emoji="🎉"), friend)
    result = weave([taste(OWNER, "own", 10), taste(FRIEND, "fri", 10)], 4)
    again = KIND.apply(state, room.woven_op(result, 2), SERVER_ACTOR)
    assert again.generation == 2
    assert [i.id for i in again.items[:4]] == [f"g2.{n}" for n in range(4)]
    assert again.items[-1].id == "mine"  # hand-added songs stay, after the woven ones
    assert next(i for i in again.items if i.song.key == kept_key).reactions == {str(FRIEND): "🎉"}


@st.composite
def op_sequences(draw: st.DrawFn) -> list[tuple[Actor, room.BlendOp]]:
    base = woven_room()
    ids = [i.id for i in base.items] + ["n1", "n2", "n3", "missing"]
    songs = [s.song.key for lib in base.library.values() for s in lib] + ["no-such-song"]
    keys = st.sampled_from(["0", "1", "V", "Vz", "a", "z", "zz", "", "a0", "!"])
    actors = st.sampled_from([owner, friend, outsider])
    op = st.one_of(
        st.builds(Reorder, item=st.sampled_from(ids), index=keys),
        st.builds(Remove, item=st.sampled_from(ids)),
        st.builds(Add, item=st.sampled_from(ids), song=st.sampled_from(songs), index=keys),
        st.builds(React, item=st.sampled_from(ids), emoji=st.sampled_from([None, "🔥", "x"])),
        st.builds(Rename, name=st.sampled_from(["A", " ", "B b"])),
    )
    return draw(st.lists(st.tuples(actors, op), max_size=30))


@settings(max_examples=200, deadline=None)
@given(op_sequences())
def test_random_edits_keep_the_playlist_sound(ops: list[tuple[Actor, room.BlendOp]]) -> None:
    state = woven_room()
    accepted: list[tuple[Actor, room.BlendOp]] = []
    for actor, op in ops:
        previous, before = state, msgspec.json.encode(state)
        try:
            state = KIND.apply(state, op, actor)
            accepted.append((actor, op))
        except OpRejected as exc:
            assert exc.code in ("not_found", "forbidden", "conflict", "invalid", "duplicate")
        # Pure: the previous state is never modified, whatever happened.
        assert msgspec.json.encode(previous) == before
        items = state.items
        assert [(i.index, i.id) for i in items] == sorted((i.index, i.id) for i in items)
        assert len({i.id for i in items}) == len(items)
        assert len({i.song.key for i in items}) == len(items)
        assert all(fractional.is_valid_key(i.index) for i in items)
    # Deterministic: replaying the accepted ops gives the same state (as every process does).
    replayed = woven_room()
    for actor, op in accepted:
        replayed = KIND.apply(replayed, op, actor)
    assert replayed == state


def test_an_older_weave_told_after_a_newer_one_changes_nothing() -> None:
    # Two processes weave one blend in turn and each tells the room after letting go of it:
    # the older weave (and the member list that came with it) may arrive second.
    members = [RoomMember(user_id=OWNER, username="o", role="owner")]

    def told(generation: int, songs: str, people: list[RoomMember]) -> list[room.BlendOp]:
        result = weave([taste(m.user_id, songs, 4) for m in people], 4)
        sync = Sync(
            name=None,
            default_name="Mix",
            owner_id=OWNER,
            settings=BlendSettings(playlist_length=4),
            members=people,
            generation=generation,
        )
        return [sync, room.woven_op(result, generation)]

    newer_members = [*members, RoomMember(user_id=FRIEND, username="f")]
    newer = KIND.apply_batch(KIND.initial_state(), told(200, "new", newer_members), SERVER_ACTOR)
    after = KIND.apply_batch(newer, told(100, "old", members), SERVER_ACTOR)
    assert after == newer
    assert [m.user_id for m in after.members] == [OWNER, FRIEND]
    assert all(i.id.startswith("g200.") for i in after.items)
    # A newer weave still replaces it, and a sync with no generation (a REST change) applies.
    latest = KIND.apply_batch(after, told(300, "late", members), SERVER_ACTOR)
    assert latest.generation == 300 and [m.user_id for m in latest.members] == [OWNER]
    plain = Sync(
        name="Renamed", default_name="Mix", owner_id=OWNER, settings=BlendSettings(), members=[]
    )
    assert KIND.apply(latest, plain, SERVER_ACTOR).name == "Renamed"
