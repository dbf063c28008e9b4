"""The timeline and effect schemas: what they accept, what they refuse."""

from __future__ import annotations

import json
import re

import msgspec
import numpy as np
import pytest

import dsp
from dsp import Clip, InvalidTimeline, Timeline
from dsp.effects import EFFECT_TYPES, Effect, Reverb, build_board, tail_seconds
from dsp.keys import parse_key, semitones_between
from dsp.timeline import clip_length_seconds, pitch_shift, stretch_factor
from tests.support import ROOT

VALID = {
    "bpm": 124,
    "key": "A minor",
    "clips": [
        {
            "id": "c1",
            "track_id": "t1",
            "in_seconds": 1.0,
            "out_seconds": 9.0,
            "position_beats": 4,
            "gain_db": -3,
            "fade_in_seconds": 0.5,
            "pitch_shift_semitones": 1,
            "source_bpm": 120,
            "source_key": "C minor",
            "effects": [{"type": "reverb", "room_size": 0.7}, {"type": "highpass"}],
        }
    ],
    "master": [{"type": "compressor", "threshold_db": -10, "ratio": 3}],
}


def with_clip(**changes: object) -> dict[str, object]:
    clip = {**VALID["clips"][0], **changes}  # type: ignore[index]
    return {**VALID, "clips": [clip]}


def test_valid_timeline_decodes_from_json_and_round_trips() -> None:
    timeline = dsp.timeline_from_json(json.dumps(VALID))
    clip = timeline.clips[0]
    assert clip.effects[0] == Reverb(room_size=0.7)
    assert stretch_factor(clip, timeline) == pytest.approx(124 / 120)
    # C minor -> A minor is 3 semitones down, plus the clip's own +1.
    assert pitch_shift(clip, timeline) == -2
    assert clip_length_seconds(clip, timeline) == pytest.approx(8.0 * 120 / 124)
    assert dsp.timeline_from_json(msgspec.json.encode(timeline)) == timeline


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (with_clip(effects=[{"type": "vst3", "path": "/tmp/evil.vst3"}]), "type"),
        (with_clip(effects=[{"type": "load_plugin"}]), "type"),
        (with_clip(effects=[{"type": "reverb", "room_size": 1.5}]), "room_size"),
        (with_clip(effects=[{"type": "delay", "feedback": 1.0}]), "feedback"),
        (with_clip(effects=[{"type": "highpass", "cutoff_hz": 0}]), "cutoff_hz"),
        (with_clip(effects=[{"type": "gain", "gain_db": "loud"}]), "gain_db"),
        (with_clip(effects=[{"type": "reverb", "path": "x"}]), "path"),
        (with_clip(effects=[{"type": "gain"}] * 17), "length"),
        (with_clip(out_seconds=0.5), "out_seconds"),
        (with_clip(in_seconds=-1), "in_seconds"),
        (with_clip(source_key="H major"), "source_key"),
        (with_clip(source_bpm=40), "stretch"),
        (with_clip(pitch_shift_semitones=48), "pitch_shift_semitones"),
        (with_clip(unknown=1), "unknown"),
        ({**VALID, "bpm": 0}, "bpm"),
        ({**VALID, "clips": [VALID["clips"][0]] * 2}, "duplicate"),  # type: ignore[index]
    ],
)
def test_invalid_timelines_are_refused(document: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidTimeline, match=message):
        dsp.timeline_from_json(json.dumps(document))
    with pytest.raises(InvalidTimeline):
        dsp.timeline_from_builtins(document)


def test_malformed_json_is_refused() -> None:
    with pytest.raises(InvalidTimeline, match="malformed"):
        dsp.timeline_from_json(b"{not json")


def test_structs_built_in_python_are_checked_by_validate() -> None:
    # msgspec does not check constraints in __init__; the renderer calls validate.
    bad = Timeline(clips=(Clip("c", "t", 0.0, 1.0, 0.0, effects=(Reverb(room_size=9.0),)),))
    with pytest.raises(InvalidTimeline, match="room_size"):
        dsp.validate_timeline(bad)
    nan = Timeline(clips=(Clip("c", "t", 0.0, 1.0, float("nan")),))
    with pytest.raises(InvalidTimeline):
        dsp.validate_timeline(nan)


def test_every_whitelisted_effect_builds_and_runs_at_its_limits() -> None:
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal((2, 22050))).astype(np.float32)
    decoder = msgspec.json.Decoder(Effect)
    for name in EFFECT_TYPES:
        effect = decoder.decode(msgspec.json.encode({"type": name}))
        info = msgspec.inspect.type_info(type(effect))
        assert isinstance(info, msgspec.inspect.StructType)
        for extreme in ("ge", "le"):
            values = {}
            for field in info.fields:
                assert isinstance(field.type, msgspec.inspect.FloatType)
                bound = getattr(field.type, extreme)
                if bound is not None:
                    values[field.name] = bound
            limited = msgspec.convert({"type": name, **values}, Effect)
            out = build_board([limited])(audio, 44100)
            assert out.shape == audio.shape
            assert np.isfinite(out).all(), (name, values)


def test_every_effect_is_in_the_documented_table() -> None:
    audio = (ROOT / "docs" / "audio.md").read_text()
    table = audio[audio.index("### Effects") : audio.index("## Stems")]
    documented = re.findall(r"^\| `(\w+)` \| [A-Z]\w* \|", table, re.M)  # (its plugin: a class)
    assert documented == list(EFFECT_TYPES)


def test_tails_grow_with_the_effect() -> None:
    assert tail_seconds(()) == 0.0
    assert tail_seconds((Reverb(room_size=0.9),)) > tail_seconds((Reverb(room_size=0.1),))
    assert tail_seconds((Reverb(room_size=1.0),) * 16) <= 10.0


@pytest.mark.parametrize(
    ("source", "target", "shift"),
    [
        ("C major", "C major", 0),
        ("C major", "D major", 2),
        ("C major", "Bb major", -2),
        ("A minor", "C major", 0),
        ("E minor", "A minor", 5),
        ("F# major", "C major", -6),
        ("Db major", "C# minor", 3),
    ],
)
def test_semitones_between_keys(source: str, target: str, shift: int) -> None:
    assert semitones_between(source, target) == shift


def test_parse_key_refuses_nonsense() -> None:
    assert parse_key("Bb minor") == (10, "minor")
    for text in ("H major", "C dorian", "c major", "C  major", ""):
        with pytest.raises(ValueError):
            parse_key(text)
