"""Properties of the arranger over random structures (hypothesis).

Whatever the inputs (tempos 70-180 BPM or unknown, any key or none, sections of any length,
leading silence, a little tempo drift, stems or not) and whatever the target and seed:
the draft lasts the target within one bar, every clip lies inside its source, every phrase
starts on a downbeat of the timeline and of its source, stretches and shifts stay within
their limits, the same seed gives the same draft, and where a choice exists the next seed
gives another one.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.arrange import (
    MAX_SHIFT,
    MAX_STRETCH,
    PHRASE_BARS,
    ArrangeInput,
    CannotArrange,
    arrange,
    compatible,
    shifted,
)
from dsp.keys import key_name
from dsp.structure import Structure
from dsp.timeline import stretch_factor, timeline_duration_seconds
from tests.dsp.test_arrange import structure

KEYS = [key_name(t, m) for m in ("major", "minor") for t in range(12)]

sections = st.lists(
    st.tuples(
        st.sampled_from([4, 8, 8, 16, 16, 2, 3, 6, 12]),
        st.floats(0.05, 1.0),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=10,
)


@st.composite
def tracks(draw: Any) -> Structure:
    bpm = draw(st.one_of(st.none(), st.floats(70.0, 180.0)) if draw(st.booleans()) else
               st.floats(70.0, 180.0))  # fmt: skip
    return structure(
        None if bpm is None else round(bpm, 2),
        draw(sections),
        key=draw(st.one_of(st.none(), st.sampled_from(KEYS))),
        offset=draw(st.floats(0.0, 2.0)),
        tail=draw(st.floats(0.0, 2.0)),
        has_stems=draw(st.booleans()),
        drift=draw(st.floats(-0.01, 0.01)),
    )


targets = st.floats(1.0, 300.0)
seeds = st.integers(0, 2**32 - 1)


def whole_bars(s: Structure) -> int:
    """Bars that end inside the audio: at the next downbeat, or (past the last one) a bar
    at the track's tempo later (the arranger's rule)."""
    if s.bpm is None or not s.downbeats:
        return 0
    bar = 240.0 / s.bpm
    n = 0
    while True:
        end = s.downbeats[n + 1] if n + 1 < len(s.downbeats) else (
            s.downbeats[-1] + (n + 2 - len(s.downbeats)) * bar
        )  # fmt: skip
        if end > s.duration + 1e-6:
            return n
        n += 1


def _inputs(structures: list[Structure]) -> list[ArrangeInput]:
    return [ArrangeInput(track_id=f"t{n}", structure=s) for n, s in enumerate(structures)]


@settings(max_examples=250, deadline=None)
@given(st.lists(tracks(), min_size=1, max_size=4), targets, seeds)
def test_every_draft_keeps_the_rules(structures: list[Structure], target: float, seed: int) -> None:
    items = _inputs(structures)
    try:
        result = arrange(items, target, seed)
    except CannotArrange:
        assert all(whole_bars(s) < PHRASE_BARS for s in structures)
        return
    timeline, plan = result.timeline, result.plan
    bar = 240.0 / timeline.bpm

    # Within one bar of the target; within half a bar (a whole number of bars) unless the
    # target is shorter than that, when the draft is one bar.
    duration = timeline_duration_seconds(timeline)
    assert abs(duration - target) <= (bar / 2 if target >= bar / 2 else bar) + 1e-6
    assert plan.bars * bar == duration or abs(plan.bars * bar - duration) < 1e-6

    assert len(timeline.clips) == len(plan.clips)
    for clip, planned in zip(timeline.clips, plan.clips, strict=True):
        source = structures[int(clip.track_id[1:])]
        assert source.bpm is not None and clip.source_bpm is not None
        # Inside its source.
        assert 0.0 <= clip.in_seconds < clip.out_seconds <= source.duration + 1e-9
        # On the downbeats: a phrase boundary of the timeline meets a downbeat of the source
        # that is a section start or a whole number of phrases into its section.
        assert planned.bar % PHRASE_BARS == 0
        lead = planned.bar * 4 - clip.position_beats
        assert -1e-9 <= lead <= 1.0 + 1e-9
        at = clip.in_seconds + lead * 60.0 / clip.source_bpm
        assert abs(at - source.downbeats[planned.source_bar]) < 1e-6
        section = next(s for s in source.sections if s.id == planned.section_id)
        assert (planned.source_bar - section.start_bar) % PHRASE_BARS == 0
        assert section.start_bar <= planned.source_bar < section.end_bar
        # Stretch and shift within their limits; the shifted key mixes with the project key.
        assert abs(stretch_factor(clip, timeline) - 1.0) <= MAX_STRETCH + 1e-9
        assert abs(clip.pitch_shift_semitones) <= MAX_SHIFT
        assert clip.source_key is None
        if source.key is not None and plan.key is not None and planned.stem != "percussive":
            assert compatible(shifted(source.key, planned.shift_semitones), plan.key)
        if planned.stem != "full":
            assert source.has_stems and planned.role in ("build", "peak")

    # Deterministic for a seed.
    assert msgspec.json.encode(arrange(items, target, seed)) == msgspec.json.encode(result)


@settings(max_examples=100, deadline=None)
@given(tracks(), st.floats(8.0, 240.0), seeds)
def test_where_a_choice_exists_the_next_seed_gives_another_draft(
    track: Structure, target: float, seed: int
) -> None:
    # The same music under two ids: every phrase can come from either, equally well.
    if whole_bars(track) < PHRASE_BARS:
        return  # nothing to arrange: no choice either
    assert track.bpm is not None  # (whole bars need a tempo)
    if 240.0 / track.bpm * 2 > target:
        return
    items = _inputs([track, track])
    one, two = arrange(items, target, seed), arrange(items, target, seed + 1)
    assert msgspec.json.encode(one.timeline) != msgspec.json.encode(two.timeline)
