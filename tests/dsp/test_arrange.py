"""The arranger on hand-built structures: tempo and key choice, form, layering, transitions.

``structure()`` builds a :class:`dsp.structure.Structure` the way the analysis would report a
steady track: a downbeat every bar from ``offset``, sections given as (bars, energy, group).
The property tests (test_arrange_properties.py) draw such structures at random.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import pytest

from dsp.arrange import (
    MAX_SHIFT,
    MAX_STRETCH,
    ArrangeInput,
    Arrangement,
    ArrangeOptions,
    CannotArrange,
    arrange,
    camelot,
    compatible,
    shifted,
    smallest_shift,
)
from dsp.codec import PROJECT_RATE, Audio
from dsp.render import render_timeline
from dsp.structure import Section, Structure
from dsp.timeline import (
    Clip,
    clip_length_seconds,
    clip_start_seconds,
    stretch_factor,
    timeline_duration_seconds,
)

VERSE = ((8, 0.3, 0), (8, 0.6, 1), (8, 1.0, 2), (8, 0.5, 1), (8, 1.0, 2), (8, 0.3, 3))


def structure(
    bpm: float | None = 120.0,
    sections: Sequence[tuple[int, float, int]] = VERSE,
    *,
    key: str | None = "A minor",
    offset: float = 0.5,
    tail: float = 0.7,
    has_stems: bool = False,
    drift: float = 0.0,
) -> Structure:
    """A steady track: bar n starts at ``offset + n * bar * (1 + drift * n / bars)``."""
    bars = sum(n for n, _, _ in sections)
    if bpm is None:
        return Structure(
            duration=30.0,
            bpm=None,
            bpm_confidence=0.0,
            key=key,
            key_confidence=0.9 if key else 0.0,
            beats=(),
            downbeats=(),
            downbeat_confidence=0.0,
            sections=(),
        )
    bar = 240.0 / bpm
    downbeats = tuple(offset + n * bar * (1 + drift * n / bars) for n in range(bars + 1))
    out, start = [], 0
    for n, (length, energy, group) in enumerate(sections):
        end = start + length
        out.append(Section(f"s{n}", start, end, downbeats[start], downbeats[end], energy, group))
        start = end
    return Structure(
        duration=downbeats[-1] + tail,
        bpm=bpm,
        bpm_confidence=0.8,
        key=key,
        key_confidence=0.9 if key else 0.0,
        beats=tuple(offset + n * bar / 4 for n in range(bars * 4)),
        downbeats=downbeats[:-1],
        downbeat_confidence=0.9,
        sections=tuple(out),
        has_stems=has_stems,
    )


def inputs(*structures: Structure) -> list[ArrangeInput]:
    return [ArrangeInput(track_id=f"t{n}", structure=s) for n, s in enumerate(structures)]


def bar_seconds(result: Arrangement) -> float:
    return 240.0 / result.timeline.bpm


# ------------------------------------------------------------------ keys


def test_camelot_codes_and_compatibility() -> None:
    assert camelot("C major") == (8, "B")
    assert camelot("A minor") == (8, "A")
    assert camelot("G major") == (9, "B")
    assert camelot("E minor") == (9, "A")
    assert camelot("F# major") == (2, "B")
    assert compatible("A minor", "C major")  # relative
    assert compatible("A minor", "E minor") and compatible("A minor", "D minor")  # ±1
    assert not compatible("A minor", "G major")  # 8A and 9B
    assert not compatible("C major", "F# major")
    assert smallest_shift("A minor", "A minor", 2) == 0
    assert smallest_shift("B minor", "A minor", 2) == -2
    assert smallest_shift("F# minor", "A minor", 2) == -2  # F minor 4A, G minor 6A: E minor 9A
    assert smallest_shift("C# major", "A minor", 1) == -1  # C major
    assert smallest_shift("F# major", "C major", 0) is None


# ------------------------------------------------------------------ tempo and key


def test_the_tempo_suits_the_most_inputs_and_the_others_are_explained() -> None:
    result = arrange(inputs(structure(120.0), structure(126.0), structure(90.0)), 60, seed=1)
    plan = result.plan
    # One input's own tempo (it plays unstretched); the other within 5 % of it.
    assert plan.bpm in (120.0, 126.0) and "unstretched" in plan.tempo_why
    unstretched = [c for c in result.timeline.clips if c.source_bpm == plan.bpm]
    assert unstretched and all(stretch_factor(c, result.timeline) == 1.0 for c in unstretched)
    # Without an input tempo that suits the most inputs, the harmonic mean of the range.
    three = arrange(inputs(structure(112.0), structure(118.0), structure(124.0)), 30, seed=1)
    assert three.plan.bpm == 118.0
    wide = arrange(inputs(structure(110.0), structure(127.0)), 30, seed=1)
    assert wide.plan.bpm == round(2 / (1 / 110 + 1 / 127), 2)
    assert "as small as possible" in wide.plan.tempo_why
    assert {c.track_id for c in result.timeline.clips} <= {"t0", "t1"}
    unused = plan.inputs[2]
    assert unused.use == "unused" and "90.0 BPM" in unused.why and "8 %" in unused.why
    for clip in result.timeline.clips:
        assert abs(stretch_factor(clip, result.timeline) - 1) <= MAX_STRETCH + 1e-9


def test_drifting_inputs_at_both_ends_of_the_limit_still_give_a_draft() -> None:
    # A counterexample the property test found: 139 and 163 BPM meet at 150.05 BPM, 7.95 %
    # from each, but both drift, and their first bars (the one-bar target's only phrase)
    # are 8.2 % and 8.0 % from it: no span within the limit. The arranger then chooses the
    # tempo allowing less stretch, and a draft comes out instead of `CannotArrange`.
    slow = structure(70.0, [(4, 1.0, 0)], key=None, offset=0.0, tail=0.0)
    rising = structure(139.0, [(4, 1.0, 0)], key=None, offset=0.0, tail=0.0, drift=0.0078)
    falling = structure(
        163.0, [(4, 1.0, 0), (4, 1.0, 0)], key=None, offset=0.0, tail=0.0, drift=-0.0078
    )
    result = arrange(inputs(slow, rising, falling), 1.0, seed=0)
    assert result.plan.bpm == 163.0 and "unstretched" in result.plan.tempo_why
    assert all(abs(stretch_factor(c, result.timeline) - 1.0) <= MAX_STRETCH
               for c in result.timeline.clips)  # fmt: skip
    left = {i.track_id: i.why for i in result.plan.inputs}
    assert "17 % stretch" in left["t1"] and "the limit is 8 %" in left["t0"]


def test_an_input_without_a_tempo_is_left_out_and_none_at_all_fails() -> None:
    result = arrange(inputs(structure(None), structure(128.0)), 30, seed=0)
    assert result.plan.inputs[0].use == "unused"
    assert "tempo is unknown" in result.plan.inputs[0].why
    with pytest.raises(CannotArrange, match="no input has a usable tempo"):
        arrange(inputs(structure(None), structure(None)), 30, seed=0)
    with pytest.raises(CannotArrange, match="no input tracks"):
        arrange([], 30, seed=0)


def test_keys_are_shifted_onto_a_compatible_key_within_two_semitones() -> None:
    # A minor (8A), C# minor (12A) and E minor (9A): no key mixes with all three unshifted.
    tracks = inputs(
        structure(120.0, key="A minor"),
        structure(122.0, key="C# minor"),
        structure(121.0, key="E minor"),
    )
    result = arrange(tracks, 90, seed=3)
    plan = result.plan
    assert plan.key is not None
    shifts = set()
    for clip, planned in zip(result.timeline.clips, plan.clips, strict=True):
        source = tracks[int(clip.track_id[1:])].structure
        assert source.key is not None and clip.source_key is None
        assert abs(clip.pitch_shift_semitones) <= MAX_SHIFT
        assert planned.shift_semitones == clip.pitch_shift_semitones
        assert compatible(shifted(source.key, planned.shift_semitones), plan.key)
        shifts.add((clip.track_id, planned.shift_semitones))
    assert len({track for track, _ in shifts}) == len(shifts)  # one shift per input
    assert all(i.use == "full" for i in plan.inputs)
    # so something moves.
    assert any(shift != 0 for _, shift in shifts)


def test_a_clashing_key_plays_only_its_drums_when_it_has_stems() -> None:
    # Within ±2 semitones every key reaches a neighbour of every other (a semitone is 7 steps
    # round the wheel), so a clash needs a tighter shift limit: C major (8B), F# major (2B).
    no_shift = ArrangeOptions(max_shift=0)
    clash = structure(124.0, key="F# major", has_stems=True)
    tracks = inputs(structure(124.0, key="C major", has_stems=True), clash)
    result = arrange(tracks, 120, seed=5, options=no_shift)
    planned = [c for c in result.plan.clips if c.track_id == "t1"]
    assert planned and all(c.stem == "percussive" for c in planned)
    assert result.plan.inputs[1].use == "percussive"
    assert all(c.shift_semitones == 0 for c in result.plan.clips)
    # Without stems it cannot be used at all, and the plan says why.
    result = arrange(
        inputs(structure(124.0, key="C major"), structure(124.0, key="F# major")), 60, 5, no_shift
    )
    assert result.plan.inputs[1].use == "unused" and "no stems" in result.plan.inputs[1].why


# ------------------------------------------------------------------ form and placement


def test_the_form_rises_to_a_peak_and_falls_to_an_outro() -> None:
    result = arrange(inputs(structure(120.0), structure(124.0, key="C major")), 120, seed=2)
    plan = result.plan
    assert plan.form[0] == "intro" and plan.form[-1] == "outro" and "peak" in plan.form
    by_role: dict[str, list[float]] = {}
    for clip in plan.clips:
        by_role.setdefault(clip.role, []).append(clip.energy)
    assert np.mean(by_role["peak"]) > np.mean(by_role["intro"])
    assert np.mean(by_role["peak"]) > np.mean(by_role["outro"])


def test_phrases_start_on_downbeats_and_cross_fade_equal_length() -> None:
    tracks = inputs(structure(120.0), structure(123.0, key="E minor", offset=1.1))
    result = arrange(tracks, 75, seed=9)
    timeline, bar = result.timeline, bar_seconds(result)
    beat = bar / 4
    for clip, planned in zip(timeline.clips, result.plan.clips, strict=True):
        source = tracks[int(clip.track_id[1:])].structure
        # The planned bar is a phrase boundary, and the clip's source downbeat lands on it.
        assert planned.bar % 4 == 0
        lead = planned.bar * 4 - clip.position_beats
        assert 0 <= lead <= 1.0
        assert clip.source_bpm is not None
        at = clip.in_seconds + lead * 60 / clip.source_bpm
        assert at == pytest.approx(source.downbeats[planned.source_bar], abs=1e-6)
        if planned.bar > 0:
            assert clip.fade_in_seconds == pytest.approx(max(lead * beat, 0.005))
    # Every clip ending on a boundary fades out exactly as the incoming clips fade in.
    starts: dict[float, Clip] = {
        p.bar * 4: c for c, p in zip(timeline.clips, result.plan.clips, strict=True)
    }
    checked = 0
    for clip in timeline.clips:
        end_beats = (
            clip_start_seconds(clip, timeline) + clip_length_seconds(clip, timeline)
        ) / beat
        incoming = starts.get(round(end_beats, 6))
        if incoming is not None and incoming is not clip:
            assert clip.fade_out_seconds == pytest.approx(incoming.fade_in_seconds)
            checked += 1
    assert checked == len(set(starts)) - 1  # every boundary but the start


def test_the_duration_is_within_one_bar_of_the_target() -> None:
    tracks = inputs(structure(128.0), structure(126.0, key="C major"))
    for target in (3, 10, 29, 61, 95, 180):
        result = arrange(tracks, target, seed=target)
        duration = timeline_duration_seconds(result.timeline)
        assert abs(duration - target) <= bar_seconds(result) / 2 + 1e-6, target
        assert result.plan.duration_seconds == pytest.approx(duration, abs=1e-3)


def test_short_inputs_are_used_in_pieces_that_fit() -> None:
    short = structure(120.0, ((4, 0.5, 0), (4, 1.0, 1)))
    result = arrange(inputs(short), 60, seed=1)
    assert all(c.bars <= 8 for c in result.plan.clips)
    assert timeline_duration_seconds(result.timeline) == pytest.approx(60, abs=1.0)


def test_drifting_tempo_keeps_each_clip_on_its_own_downbeats() -> None:
    drifting = structure(120.0, drift=0.01)  # 1 % slower by the end
    result = arrange(inputs(drifting), 40, seed=4)
    for clip, planned in zip(result.timeline.clips, result.plan.clips, strict=True):
        end = drifting.downbeats[planned.source_bar + planned.bars] if (
            planned.source_bar + planned.bars < len(drifting.downbeats)
        ) else None  # fmt: skip
        if end is not None:
            assert clip.out_seconds == pytest.approx(end)


def test_layering_puts_one_inputs_drums_under_anothers_harmony() -> None:
    tracks = inputs(
        structure(124.0, has_stems=True), structure(124.0, key="C major", has_stems=True)
    )
    result = arrange(tracks, 120, seed=1)
    layered = [c for c in result.plan.clips if c.stem == "percussive"]
    assert layered
    for drums in layered:
        over = [c for c in result.plan.clips if c.bar == drums.bar and c.clip_id != drums.clip_id]
        assert [c.stem for c in over] == ["harmonic"]
        assert over[0].track_id != drums.track_id
        assert drums.role in ("build", "peak")
    off = arrange(tracks, 120, seed=1, options=ArrangeOptions(layering=False))
    assert {c.stem for c in off.plan.clips} == {"full"}


def test_the_same_seed_gives_the_same_draft_and_the_next_seed_another() -> None:
    tracks = inputs(structure(120.0), structure(122.0, key="C major"))
    one = msgspec.json.encode(arrange(tracks, 90, seed=7))
    assert one == msgspec.json.encode(arrange(tracks, 90, seed=7))
    assert one != msgspec.json.encode(arrange(tracks, 90, seed=8))


def test_a_rendered_draft_lasts_the_target_and_keeps_the_loudness() -> None:
    """Render a short arrangement of synthetic clicks: the audio is as long as planned."""
    tracks = inputs(structure(120.0, ((4, 0.4, 0), (4, 1.0, 1))), structure(124.0, key="E minor"))
    result = arrange(tracks, 12, seed=1)

    def source(track_id: str) -> Audio:
        s = tracks[int(track_id[1:])].structure
        frames = int(s.duration * PROJECT_RATE) + 1
        mono = (0.2 * np.sin(np.arange(frames) * 2 * np.pi * 220 / PROJECT_RATE)).astype(np.float32)
        for t in s.beats:
            mono[int(t * PROJECT_RATE) : int(t * PROJECT_RATE) + 400] += 0.5
        return Audio(np.stack([mono, mono]), PROJECT_RATE)

    rendered = render_timeline(result.timeline, source, high_quality=False)
    assert rendered.audio.duration_seconds == pytest.approx(result.plan.duration_seconds, abs=0.01)
    assert rendered.loudness_lufs == pytest.approx(-14.0, abs=0.5)
