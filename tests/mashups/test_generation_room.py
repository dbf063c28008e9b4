"""The mashup room's generation ops as a pure reducer: ``generated`` and ``generation``."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from dsp.arrange import ArrangeInput, arrange
from rooms.kinds import SERVER_ACTOR, OpRejected
from server.mashups import room
from server.mashups.room import MashupRoomState
from tests.dsp.test_arrange import structure
from tests.mashups.test_room_kind import EDITOR, KIND, TRACK_A, TRACK_B, actor, add, ops, synced

GEN_ID = str(uuid.uuid4())


def draft(seed: int = 1) -> tuple[room.Generated, Any]:
    """A generated draft of the two 8-second inputs ``synced`` declares."""
    short = structure(128.0, ((4, 0.5, 0),), offset=0.2, tail=0.2)  # 7.9 s
    arranged = arrange(
        [
            ArrangeInput(track_id=TRACK_A, structure=short),
            ArrangeInput(track_id=TRACK_B, structure=short),
        ],
        12,
        seed,
    )
    clips = arranged.timeline.clips
    order = {c.id: f"a{n + 1}" for n, c in enumerate(clips)}
    return room.Generated(
        generation_id=GEN_ID, requested_by=EDITOR, timeline=arranged.timeline, order=order
    ), arranged


def generation(version: int, status: str = "generating", **extra: Any) -> room.GenerationUpdate:
    return room.GenerationUpdate(
        generation=room.Generation(
            id=extra.pop("id", GEN_ID),
            version=version,
            status=status,  # type: ignore[arg-type]
            stage=extra.pop("stage", "loading"),
            progress=extra.pop("progress", 0.1),
            seed=1,
            target_seconds=12,
            requested_by=EDITOR,
            **extra,
        )
    )


def test_the_generated_timeline_replaces_the_whole_timeline_as_one_op() -> None:
    state = KIND.apply_batch(
        synced(TRACK_A, TRACK_B),
        ops(add("mine"), {"op": "set_tempo", "bpm": 90}, {"op": "set_key", "key": "C major"}),
        actor(EDITOR),
    )
    placed, arranged = draft()
    state = KIND.apply_batch(state, [placed, generation(3, stage="rendering")], SERVER_ACTOR)
    assert state.timeline == arranged.timeline
    assert state.order == placed.order and "mine" not in state.order
    assert state.generation is not None and state.generation.stage == "rendering"
    # It goes over the wire and back as the same state, and editors may edit it at once.
    assert msgspec.json.decode(msgspec.json.encode(state), type=MashupRoomState) == state
    first = state.timeline.clips[0].id
    edited = KIND.apply_batch(
        state, ops({"op": "move_clip", "clip": first, "position_beats": 1}), actor(EDITOR)
    )
    assert edited.timeline.clips[0].position_beats == 1.0


def test_only_the_server_sends_generation_ops() -> None:
    state = synced(TRACK_A, TRACK_B)
    placed, _ = draft()
    for op in (placed, generation(1)):
        raw = msgspec.to_builtins(op)
        with pytest.raises(OpRejected) as caught:
            KIND.apply_batch(state, ops(raw), actor(EDITOR))
        assert caught.value.code == "forbidden"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("foreign_track", "not_found"),
        ("missing_order", "invalid"),
        ("extra_order", "invalid"),
        ("bad_index", "invalid"),
        ("past_the_end", "invalid"),
        ("out_of_range", "invalid"),
    ],
)
def test_a_bad_generated_timeline_is_refused_whole(change: str, code: str) -> None:
    state = synced(TRACK_A, TRACK_B)
    placed, _ = draft()
    timeline, order = placed.timeline, dict(placed.order)
    first = timeline.clips[0]
    if change == "foreign_track":
        clips = (msgspec.structs.replace(first, track_id=str(uuid.uuid4())), *timeline.clips[1:])
        timeline = msgspec.structs.replace(timeline, clips=clips)
    elif change == "missing_order":
        order.pop(first.id)
    elif change == "extra_order":
        order["ghost"] = "z"
    elif change == "bad_index":
        order[first.id] = "a0"  # a fractional key never ends in 0
    elif change == "past_the_end":
        clips = (msgspec.structs.replace(first, out_seconds=9.5), *timeline.clips[1:])
        timeline = msgspec.structs.replace(timeline, clips=clips)
    elif change == "out_of_range":  # built in Python, so only validate_timeline sees it
        clips = (msgspec.structs.replace(first, gain_db=100.0), *timeline.clips[1:])
        timeline = msgspec.structs.replace(timeline, clips=clips)
    bad = room.Generated(generation_id=GEN_ID, requested_by=EDITOR, timeline=timeline, order=order)
    with pytest.raises(OpRejected) as caught:
        KIND.apply_batch(state, [bad, generation(3)], SERVER_ACTOR)
    assert caught.value.code == code


def test_generation_updates_never_go_back() -> None:
    state = synced(TRACK_A)
    state = KIND.apply_batch(state, [generation(2, stage="arranging")], SERVER_ACTOR)
    # An older update of the same generation, arriving late, is ignored.
    assert KIND.apply_batch(state, [generation(1, stage="loading")], SERVER_ACTOR) == state
    done = KIND.apply_batch(
        state, [generation(104, "completed", stage="done", progress=1.0)], SERVER_ACTOR
    )
    assert done.generation is not None and done.generation.status == "completed"
    # A new generation replaces the old one whatever its version.
    other = str(uuid.uuid4())
    fresh = KIND.apply_batch(done, [generation(0, "pending", id=other)], SERVER_ACTOR)
    assert fresh.generation is not None and fresh.generation.id == other
