"""The mashup room kind as a pure reducer: ops, permissions, rejections, determinism."""

from __future__ import annotations

import random
import uuid
from typing import Any

import msgspec
import numpy as np
import pytest

import dsp
from dsp.timeline import MAX_CLIPS
from rooms.kinds import SERVER_ACTOR, Actor, OpRejected
from server.mashups import room
from server.mashups.room import MashupOp, MashupRoom, MashupRoomState

KIND = MashupRoom()
OWNER, EDITOR, VIEWER, STRANGER = (uuid.uuid4() for _ in range(4))
TRACK_A, TRACK_B = str(uuid.uuid4()), str(uuid.uuid4())
_ops = msgspec.json.Decoder(list[MashupOp])


def ops(*raw: dict[str, Any]) -> list[Any]:
    """Decode ops exactly as the server decodes a client's batch."""
    return _ops.decode(msgspec.json.encode(list(raw)))


def actor(user: uuid.UUID, role: str = "editor") -> Actor:
    return Actor(user_id=user, role=role)


def synced(*inputs: str, version: int = 1) -> MashupRoomState:
    sync = room.Sync(
        version=version,
        name="Night drive",
        owner_id=OWNER,
        target_duration_seconds=60,
        members=[
            room.RoomMember(user_id=OWNER, username="o", role="owner"),
            room.RoomMember(user_id=EDITOR, username="e", role="editor"),
            room.RoomMember(user_id=VIEWER, username="v", role="viewer"),
        ],
        inputs=[
            room.InputTrack(
                track_id=t,
                name=f"{t}.wav",
                owner_id=OWNER,
                duration_seconds=8.0,
                bpm=120.0,
                key_signature="A minor",
            )
            for t in inputs
        ],
    )
    return KIND.apply_batch(KIND.initial_state(), [sync], SERVER_ACTOR)


def add(clip_id: str, track: str = TRACK_A, index: str = "V", **extra: Any) -> dict[str, Any]:
    clip = {
        "id": clip_id,
        "track_id": track,
        "in_seconds": 0.0,
        "out_seconds": 4.0,
        "position_beats": 0.0,
        **extra,
    }
    return {"op": "add_clip", "clip": clip, "index": index}


def rejected(state: MashupRoomState, who: Actor, *raw: dict[str, Any]) -> str:
    with pytest.raises(OpRejected) as caught:
        KIND.apply_batch(state, ops(*raw), who)
    return caught.value.code


def test_edits_build_the_timeline() -> None:
    state = synced(TRACK_A, TRACK_B)
    state = KIND.apply_batch(
        state,
        ops(
            add("c1", index="V"),
            add("c2", TRACK_B, index="F", source_bpm=120.0, source_key="A minor"),
            {"op": "move_clip", "clip": "c1", "position_beats": 8},
            {"op": "trim_clip", "clip": "c1", "in_seconds": 1.0, "out_seconds": 3.5},
            {"op": "set_clip", "clip": "c1", "gain_db": -6, "fade_in_seconds": 0.25},
            {"op": "set_clip_effects", "clip": "c2", "effects": [{"type": "lowpass"}]},
            {"op": "set_tempo", "bpm": 126},
            {"op": "set_key", "key": "C major"},
            {"op": "set_master", "effects": [{"type": "compressor", "ratio": 2}]},
        ),
        actor(EDITOR),
    )
    timeline = state.timeline
    # Clips are ordered by their fractional index: c2 ("F") before c1 ("V").
    assert [c.id for c in timeline.clips] == ["c2", "c1"]
    c2, c1 = timeline.clips
    assert (c1.position_beats, c1.in_seconds, c1.out_seconds) == (8.0, 1.0, 3.5)
    assert (c1.gain_db, c1.fade_in_seconds, c1.fade_out_seconds) == (-6.0, 0.25, 0.0)
    assert c2.effects == (dsp.effects.LowpassFilter(),)
    assert (timeline.bpm, timeline.key) == (126.0, "C major")
    assert timeline.master == (dsp.effects.Compressor(ratio=2.0),)
    # set_clip can clear a field (null) and leaves the others alone.
    state = KIND.apply_batch(
        state, ops({"op": "set_clip", "clip": "c2", "source_bpm": None}), actor(OWNER, "owner")
    )
    assert state.timeline.clips[0].source_bpm is None
    assert state.timeline.clips[0].source_key == "A minor"
    assert state.timeline.clips[0].stem == "full"
    state = KIND.apply_batch(
        state, ops({"op": "set_clip", "clip": "c2", "stem": "percussive"}), actor(OWNER, "owner")
    )
    assert state.timeline.clips[0].stem == "percussive"
    state = KIND.apply_batch(
        state, ops({"op": "reorder_clip", "clip": "c1", "index": "A"}), actor(EDITOR)
    )
    assert [c.id for c in state.timeline.clips] == ["c1", "c2"]
    state = KIND.apply_batch(state, ops({"op": "remove_clip", "clip": "c1"}), actor(EDITOR))
    assert [c.id for c in state.timeline.clips] == ["c2"]
    assert state.order == {"c2": "F"}


def test_state_round_trips_and_is_what_the_renderer_accepts() -> None:
    state = KIND.apply_batch(
        synced(TRACK_A),
        ops(
            add("c1", source_bpm=100.0, effects=[{"type": "reverb", "room_size": 0.3}]),
            add("c2", index="X", position_beats=4, pitch_shift_semitones=3),
        ),
        actor(EDITOR),
    )
    encoded = msgspec.json.encode(state)
    assert msgspec.json.decode(encoded, type=MashupRoomState) == state
    # The accepted timeline renders (sources of the length the inputs claim).
    tone = np.sin(np.linspace(0, 2000, 8 * 44100, dtype=np.float32)) * 0.3
    audio = dsp.Audio(np.stack([tone, tone]), 44100)
    rendered = dsp.render_timeline(state.timeline, {TRACK_A: audio}, high_quality=False)
    assert rendered.audio.duration_seconds > 4.0


def test_viewers_and_strangers_cannot_edit() -> None:
    state = synced(TRACK_A)
    assert rejected(state, actor(VIEWER, "viewer"), add("c1")) == "forbidden"
    # The room's member list wins over the role the user joined with: demoted or removed
    # members lose their rights at once.
    assert rejected(state, actor(VIEWER, "editor"), add("c1")) == "forbidden"
    assert rejected(state, actor(STRANGER, "editor"), add("c1")) == "forbidden"
    # Only the server sends server ops.
    sync = {
        "op": "sync",
        "version": 9,
        "name": "x",
        "owner_id": str(EDITOR),
        "target_duration_seconds": 1,
        "members": [],
        "inputs": [],
    }
    assert rejected(state, actor(OWNER, "owner"), sync) == "forbidden"
    ready = {
        "op": "preview_ready",
        "preview": {
            "id": "p",
            "url": "/x",
            "seq": 1,
            "start_seconds": 0,
            "duration_seconds": 1,
            "mime_type": "audio/mpeg",
            "requested_by": str(OWNER),
        },
    }
    assert rejected(state, actor(EDITOR), ready) == "forbidden"
    export = {
        "op": "export",
        "export": {"id": "e", "status": "completed", "seq": 1, "requested_by": str(OWNER)},
    }
    assert rejected(state, actor(OWNER, "owner"), export) == "forbidden"
    exported = KIND.apply_batch(state, ops(export), SERVER_ACTOR)
    assert exported.export is not None and exported.export.status == "completed"


def test_ops_on_removed_clips_and_bad_values_are_rejected() -> None:
    state = KIND.apply_batch(synced(TRACK_A), ops(add("c1")), actor(EDITOR))
    gone = KIND.apply_batch(state, ops({"op": "remove_clip", "clip": "c1"}), actor(EDITOR))
    for op in (
        {"op": "move_clip", "clip": "c1", "position_beats": 1},
        {"op": "trim_clip", "clip": "c1", "in_seconds": 0, "out_seconds": 1},
        {"op": "set_clip", "clip": "c1", "gain_db": 1},
        {"op": "set_clip_effects", "clip": "c1", "effects": []},
        {"op": "reorder_clip", "clip": "c1", "index": "a"},
        {"op": "remove_clip", "clip": "c1"},
    ):
        assert rejected(gone, actor(EDITOR), op) == "not_found", op
    assert rejected(state, actor(EDITOR), add("c1")) == "conflict"
    # The source must be one of the mashup's inputs.
    assert rejected(state, actor(EDITOR), add("c9", TRACK_B)) == "not_found"
    # Clips must lie inside their source (8 s long).
    assert rejected(state, actor(EDITOR), add("c9", out_seconds=9.0)) == "invalid"
    trim = {"op": "trim_clip", "clip": "c1", "in_seconds": 7.99, "out_seconds": 8.0}
    assert rejected(state, actor(EDITOR), trim) == "invalid"
    trim = {"op": "trim_clip", "clip": "c1", "in_seconds": 3.0, "out_seconds": 2.0}
    assert rejected(state, actor(EDITOR), trim) == "invalid"
    assert rejected(state, actor(EDITOR), add("c9", index="bad!")) == "invalid"
    # A tempo the renderer would refuse (c2 locked to 100 BPM, stretch > 2) is refused here.
    locked = KIND.apply_batch(state, ops(add("c2", source_bpm=100.0)), actor(EDITOR))
    assert rejected(locked, actor(EDITOR), {"op": "set_tempo", "bpm": 250}) == "invalid"
    # A batch is all or nothing: the valid first op is not applied either.
    assert (
        rejected(state, actor(EDITOR), {"op": "set_tempo", "bpm": 90}, add("c9", TRACK_B))
        == "not_found"
    )
    assert state.timeline.bpm == 120.0


@pytest.mark.parametrize(
    "raw",
    [
        {"op": "set_clip_effects", "clip": "c1", "effects": [{"type": "vst", "path": "/x"}]},
        {"op": "set_master", "effects": [{"type": "reverb", "room_size": 7}]},
        {"op": "set_tempo", "bpm": 1000},
        {"op": "set_key", "key": "H major"},
        {"op": "set_clip", "clip": "c1", "gain_db": 100},
        {"op": "set_clip", "clip": "c1", "stem": "vocals"},
        {"op": "move_clip", "clip": "c1", "position_beats": -1},
        {"op": "add_clip", "clip": {"id": "x", "track_id": "t"}, "index": "V"},
        {"op": "rename", "name": "x"},
        {"op": "set_tempo", "bpm": 100, "extra": 1},
    ],
)
def test_malformed_ops_do_not_decode(raw: dict[str, Any]) -> None:
    # The hub answers these with ``bad_ops`` before the reducer runs.
    with pytest.raises(msgspec.ValidationError):
        ops(raw)


def test_sync_drops_clips_of_withdrawn_inputs() -> None:
    state = KIND.apply_batch(
        synced(TRACK_A, TRACK_B), ops(add("a1"), add("b1", TRACK_B, index="W")), actor(EDITOR)
    )
    state = KIND.apply_batch(state, [_sync_of(TRACK_A)], SERVER_ACTOR)
    assert [c.id for c in state.timeline.clips] == ["a1"]
    assert state.order == {"a1": "V"}
    assert [t.track_id for t in state.inputs] == [TRACK_A]
    # A sync older than the one applied (it lost a race on the way) changes nothing.
    assert KIND.apply(state, _sync_of(TRACK_A, TRACK_B, version=1), SERVER_ACTOR) == state
    assert KIND.apply(state, _sync_of(TRACK_A, TRACK_B, version=3), SERVER_ACTOR).inputs != (
        state.inputs
    )


def _sync_of(*inputs: str, version: int = 2) -> room.Sync:
    base = synced(*inputs)
    assert base.owner_id is not None
    return room.Sync(
        version=version,
        name=base.name,
        owner_id=base.owner_id,
        target_duration_seconds=base.target_duration_seconds,
        members=base.members,
        inputs=base.inputs,
    )


def test_previews_keep_the_latest_and_announcements_change_nothing() -> None:
    state = synced(TRACK_A)
    previews = [
        room.Preview(
            id=f"p{n}",
            url=f"/mashups/x/previews/p{n}",
            seq=n,
            start_seconds=0.0,
            duration_seconds=5.0,
            mime_type="audio/mpeg",
            requested_by=OWNER,
        )
        for n in range(7)
    ]
    started = room.PreviewStarted(
        id="p9", requested_by=OWNER, seq=3, start_seconds=0.0, duration_seconds=5.0
    )
    failed = room.PreviewFailed(id="p9", code="superseded", detail="newer")
    assert KIND.apply_batch(state, [started, failed], SERVER_ACTOR) == state
    for preview in previews[:5]:
        state = KIND.apply(state, room.PreviewReady(preview=preview), SERVER_ACTOR)
    assert room.evicted_previews(state.previews, previews[5]) == [previews[0]]
    state = KIND.apply(state, room.PreviewReady(preview=previews[5]), SERVER_ACTOR)
    assert [p.id for p in state.previews] == ["p1", "p2", "p3", "p4", "p5"]


def test_before_the_first_sync_the_join_role_decides() -> None:
    state = KIND.initial_state()
    # No inputs yet, so nothing can be added, but the role check passes for an editor...
    assert rejected(state, actor(EDITOR, "editor"), add("c1")) == "not_found"
    # ...and fails for a viewer.
    assert rejected(state, actor(VIEWER, "viewer"), add("c1")) == "forbidden"
    tempo = KIND.apply_batch(state, ops({"op": "set_tempo", "bpm": 90}), actor(OWNER, "owner"))
    assert tempo.timeline.bpm == 90.0


def test_every_state_the_room_accepts_is_a_valid_timeline() -> None:
    """Random edits, many of them out of bounds: whatever the reducer accepts passes the
    renderer's whole-timeline validation and survives a JSON round trip."""
    rng = random.Random(7)
    state = synced(TRACK_A, TRACK_B)
    accepted = rejections = 0

    def value(low: float, high: float) -> float:
        return round(rng.uniform(low - (high - low) * 0.3, high + (high - low) * 0.3), 3)

    for n in range(600):
        ids = [c.id for c in state.timeline.clips] or ["c0"]
        target = rng.choice([*ids, "nope"])
        kind = rng.randrange(9)
        if kind == 0:
            start = value(0, 8)
            op: dict[str, Any] = add(
                f"c{n}",
                rng.choice([TRACK_A, TRACK_B, "t?"]),
                index=rng.choice(["V", "a", "1", "z"]),
                in_seconds=max(start, 0.0),
                out_seconds=max(start + value(0, 4), 0.0),
                source_bpm=rng.choice([None, 60.0, 100.0, 120.0, 200.0]),
            )
        elif kind == 1:
            op = {"op": "move_clip", "clip": target, "position_beats": max(value(0, 64), 0)}
        elif kind == 2:
            a, b = sorted((max(value(0, 8), 0), max(value(0, 8), 0)))
            op = {"op": "trim_clip", "clip": target, "in_seconds": a, "out_seconds": b}
        elif kind == 3:
            op = {"op": "set_clip", "clip": target, "source_bpm": rng.choice([None, 50.0, 90.0])}
        elif kind == 4:
            op = {"op": "set_tempo", "bpm": rng.choice([40.0, 90.0, 120.0, 180.0, 260.0])}
        elif kind == 5:
            op = {"op": "remove_clip", "clip": target}
        elif kind == 6:
            op = {"op": "reorder_clip", "clip": target, "index": rng.choice(["B", "x", "0"])}
        elif kind == 7:
            op = {"op": "set_clip", "clip": target, "fade_in_seconds": max(value(0, 3), 0)}
        else:
            op = {"op": "set_master", "effects": [{"type": "limiter"}] * rng.randrange(3)}
        try:
            state = KIND.apply_batch(state, ops(op), actor(EDITOR))
        except (OpRejected, msgspec.ValidationError):
            rejections += 1
            continue
        accepted += 1
        assert dsp.validate_timeline(state.timeline) == state.timeline
        assert set(state.order) == {c.id for c in state.timeline.clips}
        keys = [(state.order[c.id], c.id) for c in state.timeline.clips]
        assert keys == sorted(keys)
    assert accepted > 150 and rejections > 100  # both paths were exercised
    assert msgspec.json.decode(msgspec.json.encode(state), type=MashupRoomState) == state


def test_a_full_timeline_takes_no_more_clips() -> None:
    state = synced(TRACK_A)
    batch = [add(f"c{n}", position_beats=n) for n in range(MAX_CLIPS)]
    for start in range(0, MAX_CLIPS, KIND.max_batch_ops):
        chunk = batch[start : start + KIND.max_batch_ops]
        state = KIND.apply_batch(state, ops(*chunk), actor(EDITOR))
    assert len(state.timeline.clips) == MAX_CLIPS
    assert rejected(state, actor(EDITOR), add("one-more")) == "invalid"
