"""Rendering: sample-accurate placement, loudness and true peak, windows, bad input."""

from __future__ import annotations

import typing

import msgspec
import numpy as np
import pyloudnorm
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsp
from dsp import Audio, AudioTooLong, Clip, InvalidTimeline, MissingSource, Timeline
from dsp.effects import Compressor, Delay, Effect, HighpassFilter, Reverb
from dsp.render import render_timeline

RATE = 44100


def burst_track(onset: float, seconds: float = 4.0) -> Audio:
    """Silence, then from ``onset`` a loud decaying tone (a clear, sharp start)."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = np.where(t >= onset, 0.5 * np.sin(2 * np.pi * 330 * (t - onset)), 0.0)
    wave *= np.exp(-np.maximum(t - onset, 0.0) / 1.5)
    return Audio(np.stack([wave, wave]).astype(np.float32), RATE)


def first_sound(audio: Audio, fraction: float = 0.05) -> float:
    envelope = np.abs(audio.samples).max(axis=0)
    return float(np.argmax(envelope > fraction * envelope.max()) / audio.sample_rate)


def test_clip_lands_where_the_timeline_puts_it() -> None:
    sources = {"t": burst_track(onset=1.0)}
    # 120 BPM: beat 3 is 1.5 s. The clip starts 0.5 s before the burst in the source.
    timeline = Timeline(bpm=120, clips=(Clip("c", "t", 0.5, 3.5, 3.0),))
    rendered = render_timeline(timeline, sources, target_lufs=None)
    assert abs(first_sound(rendered.audio) - 2.0) < 0.001


@pytest.mark.parametrize(("source_bpm", "shift"), [(100.0, 0.0), (140.0, 2.0), (120.0, -3.0)])
def test_stretched_and_shifted_clip_starts_on_its_beat(source_bpm: float, shift: float) -> None:
    # The clip starts exactly where the sound starts, so its first sample is the onset.
    sources = {"t": burst_track(onset=1.0)}
    clip = Clip(
        "c",
        "t",
        1.0,
        3.5,
        5.0,
        source_bpm=source_bpm,
        pitch_shift_semitones=shift,
        effects=(HighpassFilter(cutoff_hz=60.0),),
    )
    timeline = Timeline(bpm=120, clips=(clip,), master=(Compressor(),))
    rendered = render_timeline(timeline, sources)  # normalised and limited, too
    assert abs(first_sound(rendered.audio) - 2.5) < 0.001


def mashup(sources: dict[str, Audio]) -> Timeline:
    return Timeline(
        bpm=120,
        key="C major",
        clips=(
            Clip("a", "drums", 0.0, 5.0, 0.0, source_bpm=120.0, effects=(Compressor(),)),
            Clip(
                "b",
                "chords",
                0.0,
                5.0,
                4.0,
                source_key="A minor",
                fade_in_seconds=0.5,
                effects=(Reverb(room_size=0.4),),
            ),
            Clip(
                "c",
                "drums",
                1.0,
                5.0,
                8.0,
                gain_db=-6.0,
                pitch_shift_semitones=2.0,
                effects=(Delay(delay_seconds=0.2, feedback=0.4, mix=0.3),),
            ),
        ),
        master=(Compressor(threshold_db=-12.0, ratio=2.0),),
    )


@pytest.mark.parametrize("target", [-14.0, -23.0, -9.0])
def test_output_meets_loudness_target_under_the_true_peak_ceiling(
    drums: Audio, chords: Audio, target: float
) -> None:
    sources = {"drums": drums, "chords": chords}
    rendered = render_timeline(mashup(sources), sources, target_lufs=target, high_quality=False)
    out = rendered.audio.samples
    measured = pyloudnorm.Meter(RATE).integrated_loudness(out.T.astype(np.float64))
    assert abs(measured - target) <= 0.5
    assert rendered.loudness_lufs == pytest.approx(measured, abs=0.01)
    assert dsp.analysis.true_peak_dbtp(rendered.audio) <= -1.0  # type: ignore[operator]
    assert rendered.true_peak_dbtp is not None and rendered.true_peak_dbtp <= -1.0


def test_quiet_peaky_material_is_limited_not_clipped(drums: Audio) -> None:
    quiet = Audio(drums.samples * np.float32(0.1), RATE)  # 20 dB down, peaks far above
    timeline = Timeline(clips=(Clip("a", "d", 0.0, 6.0, 0.0),))
    assert dsp.analysis.integrated_loudness(quiet) < -40  # type: ignore[operator]
    rendered = render_timeline(timeline, {"d": quiet}, target_lufs=-10.0)
    measured = pyloudnorm.Meter(RATE).integrated_loudness(rendered.audio.samples.T.astype(float))
    assert abs(measured - -10.0) <= 0.5
    assert dsp.analysis.true_peak_dbtp(rendered.audio) <= -1.0  # type: ignore[operator]


def test_window_is_a_slice_of_the_whole(drums: Audio, chords: Audio) -> None:
    sources = {"drums": drums, "chords": chords}
    timeline = mashup(sources)
    timeline = Timeline(bpm=timeline.bpm, key=timeline.key, clips=timeline.clips)  # no master
    whole = render_timeline(timeline, sources, target_lufs=None, high_quality=False)
    part = render_timeline(
        timeline,
        sources,
        start_seconds=2.0,
        duration_seconds=3.0,
        target_lufs=None,
        high_quality=False,
    )
    assert part.audio.frames == 3 * RATE
    np.testing.assert_allclose(
        part.audio.samples, whole.audio.samples[:, 2 * RATE : 5 * RATE], atol=1e-6
    )


def test_duration_covers_effect_tails_and_skips_muted_clips(drums: Audio) -> None:
    dry = Timeline(clips=(Clip("a", "d", 0.0, 2.0, 0.0),))
    wet = Timeline(clips=(Clip("a", "d", 0.0, 2.0, 0.0, effects=(Reverb(room_size=0.5),)),))
    assert dsp.timeline_duration_seconds(dry) == pytest.approx(2.0)
    rendered = render_timeline(wet, {"d": drums}, target_lufs=None)
    assert rendered.audio.duration_seconds > 3.0
    tail = rendered.audio.samples[:, int(2.2 * RATE) :]
    assert np.abs(tail).max() > 1e-3  # the reverb rings on after the clip
    muted = Timeline(clips=(Clip("a", "d", 0.0, 2.0, 0.0, muted=True),))
    assert render_timeline(muted, {"d": drums}).audio.frames == 0


def test_fades_shape_the_clip_edges(drums: Audio) -> None:
    steady = Audio(np.full((2, 3 * RATE), 0.5, dtype=np.float32), RATE)
    timeline = Timeline(
        clips=(Clip("a", "s", 0.0, 3.0, 0.0, fade_in_seconds=1.0, fade_out_seconds=0.5),)
    )
    out = render_timeline(timeline, {"s": steady}, target_lufs=None).audio.samples[0]
    assert abs(out[0]) < 0.01 and out[RATE // 2] < out[RATE] == pytest.approx(0.5, abs=0.01)
    assert abs(out[-1]) < 0.01 and out[int(2.25 * RATE)] == pytest.approx(0.5, abs=0.01)


def test_missing_track_and_out_of_range_clip_are_refused(drums: Audio) -> None:
    with pytest.raises(MissingSource):
        render_timeline(Timeline(clips=(Clip("a", "nope", 0.0, 1.0, 0.0),)), {"d": drums})
    beyond = Timeline(clips=(Clip("a", "d", 60.0, 61.0, 0.0),))
    with pytest.raises(InvalidTimeline, match="after the end"):
        render_timeline(beyond, {"d": drums})


def test_absurd_lengths_are_refused(drums: Audio) -> None:
    far = Timeline(bpm=20, clips=(Clip("a", "d", 0.0, 1.0, 90_000.0),))
    with pytest.raises(AudioTooLong):
        render_timeline(far, {"d": drums})


def test_invalid_struct_is_refused_before_any_work(drums: Audio) -> None:
    bad = Timeline(clips=(Clip("a", "d", 0.0, 1.0, 0.0, gain_db=500.0),))
    with pytest.raises(InvalidTimeline, match="gain_db"):
        render_timeline(bad, {"d": drums})


@pytest.mark.parametrize(("start", "duration"), [(-1.0, 1.0), (float("nan"), 1.0), (0.0, -2.0)])
def test_bad_windows_are_refused(drums: Audio, start: float, duration: float) -> None:
    timeline = Timeline(clips=(Clip("a", "d", 0.0, 1.0, 0.0),))
    with pytest.raises(InvalidTimeline, match="window"):
        render_timeline(timeline, {"d": drums}, start_seconds=start, duration_seconds=duration)


def _effect_strategy() -> st.SearchStrategy[dict[str, object]]:
    """Any whitelisted effect with every parameter drawn from its allowed range."""
    options = []
    for cls in typing.get_args(Effect):
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        fields = {}
        for f in info.fields:
            assert isinstance(f.type, msgspec.inspect.FloatType)  # every parameter is a float
            fields[f.name] = st.floats(f.type.ge, f.type.le, allow_nan=False)
        tag = cls.__struct_config__.tag
        options.append(st.fixed_dictionaries({"type": st.just(tag), **fields}))
    return st.one_of(options)


@st.composite
def timelines(draw: st.DrawFn, max_source_seconds: float = 3.0) -> dict[str, object]:
    """Valid timeline documents over tracks "drums" and "chords" (5 s or longer)."""
    clips = []
    for index in range(draw(st.integers(0, 3))):
        start = draw(st.floats(0.0, 2.0))
        clips.append(
            {
                "id": f"c{index}",
                "track_id": draw(st.sampled_from(["drums", "chords"])),
                "in_seconds": start,
                "out_seconds": start + draw(st.floats(0.05, max_source_seconds)),
                "position_beats": draw(st.floats(0.0, 8.0)),
                "gain_db": draw(st.floats(-60.0, 24.0)),
                "fade_in_seconds": draw(st.floats(0.0, 5.0)),
                "fade_out_seconds": draw(st.floats(0.0, 5.0)),
                "pitch_shift_semitones": draw(st.floats(-24.0, 24.0)),
                "source_bpm": draw(st.none() | st.floats(70.0, 240.0)),
                "source_key": draw(st.none() | st.sampled_from(["C major", "F# minor"])),
                "effects": draw(st.lists(_effect_strategy(), max_size=3)),
                "muted": draw(st.booleans()),
            }
        )
    return {
        "bpm": draw(st.floats(120.0, 140.0)),
        "key": draw(st.none() | st.sampled_from(["A minor", "Eb major"])),
        "clips": clips,
        "master": draw(st.lists(_effect_strategy(), max_size=2)),
    }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=timelines())
def test_any_valid_timeline_renders_within_limits(document: dict[str, object]) -> None:
    """Whatever the (valid) timeline, the render finishes, is finite and obeys the ceiling."""
    rng = np.random.default_rng(0)
    sources = {
        name: Audio((0.3 * rng.standard_normal((2, 5 * RATE))).astype(np.float32), RATE)
        for name in ("drums", "chords")
    }
    timeline = dsp.timeline_from_builtins(document)
    rendered = render_timeline(timeline, sources, high_quality=False)
    samples = rendered.audio.samples
    assert np.isfinite(samples).all()
    if rendered.true_peak_dbtp is not None:
        assert rendered.true_peak_dbtp <= -1.0
        assert dsp.analysis.true_peak_dbtp(rendered.audio) <= -1.0  # type: ignore[operator]
