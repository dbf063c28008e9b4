"""The async preview API: caching, supersession, back-pressure and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsp
from dsp import (
    Audio,
    Clip,
    InvalidTimeline,
    MissingSource,
    PreviewBusy,
    Previewer,
    Superseded,
    Timeline,
)
from dsp.effects import Chorus, Reverb
from dsp.render import CHUNK_FRAMES
from tests.dsp.test_render import timelines
from tests.support import eventually


class Library:
    """A source loader over in-memory tracks that counts its calls."""

    def __init__(self, tracks: dict[str, Audio]) -> None:
        self.tracks = tracks
        self.calls: list[str] = []

    async def __call__(self, track_id: str) -> Audio:
        self.calls.append(track_id)
        await asyncio.sleep(0)
        return self.tracks[track_id]


@pytest.fixture
def library(drums: Audio, chords: Audio) -> Library:
    return Library({"drums": drums, "chords": chords})


def timeline(gain_db: float = 0.0) -> Timeline:
    return Timeline(
        bpm=126,
        key="C major",
        clips=(
            Clip("a", "drums", 0.0, 4.0, 0.0, source_bpm=120.0, gain_db=gain_db),
            Clip(
                "b",
                "chords",
                0.0,
                4.0,
                4.0,
                source_key="A minor",
                pitch_shift_semitones=1.0,
                effects=(Chorus(), Reverb(room_size=0.3)),
            ),
        ),
    )


async def test_preview_renders_a_decodable_window(library: Library) -> None:
    async with Previewer(library, format="wav") as previewer:
        result = await previewer.render(timeline(), start_seconds=1.0, duration_seconds=3.0)
    assert result.format == "wav" and result.mime_type == "audio/wav"
    audio = dsp.decode(result.data)
    assert audio.frames == 3 * 44100
    assert result.duration_seconds == pytest.approx(3.0)
    assert result.loudness_lufs == pytest.approx(-14.0, abs=0.5)
    assert result.true_peak_dbtp is not None and result.true_peak_dbtp <= -1.0


async def test_mp3_preview_by_default(library: Library) -> None:
    async with Previewer(library) as previewer:
        result = await previewer.render(timeline(), duration_seconds=2.0)
    assert result.mime_type == "audio/mpeg"
    assert dsp.probe(result.data).format == "mp3"
    # The ceiling holds for what the listener decodes, and the figure is that one.
    peak = dsp.analysis.true_peak_dbtp(dsp.decode(result.data))
    assert peak is not None and peak <= -1.0
    assert result.true_peak_dbtp == peak


async def test_warm_cache_reuses_sources_and_stretched_clips(library: Library) -> None:
    async with Previewer(library, format="wav") as previewer:
        first = await previewer.render(timeline(), duration_seconds=4.0)
        entries = previewer.cache_stats().entries
        assert entries == 6  # per clip: source, stretched, finished
        hits = previewer.cache_stats().hits
        # A gain change reuses the stretched audio; only the finished clip is new.
        second = await previewer.render(timeline(gain_db=-6.0), duration_seconds=4.0)
        stats = previewer.cache_stats()
    assert sorted(library.calls) == ["chords", "drums"]
    assert stats.entries == entries + 1
    assert stats.hits > hits
    assert first.data != second.data


async def test_cache_is_bounded_by_bytes(library: Library) -> None:
    one_clip = 4 * 44100 * 2 * 4  # 4 s of stereo float32
    async with Previewer(library, format="wav", cache_bytes=3 * one_clip) as previewer:
        await previewer.render(timeline(), duration_seconds=4.0)
        stats = previewer.cache_stats()
    assert stats.bytes <= stats.max_bytes
    assert stats.entries < 6


async def test_newer_render_for_the_same_key_supersedes_the_older(library: Library) -> None:
    async with Previewer(library, format="wav") as previewer:
        older = asyncio.create_task(previewer.render(timeline(), key="room-1"))
        newer = asyncio.create_task(previewer.render(timeline(gain_db=-3.0), key="room-1"))
        other = asyncio.create_task(previewer.render(timeline(), key="room-2"))
        results = await asyncio.gather(older, newer, other, return_exceptions=True)
    assert isinstance(results[0], Superseded)
    assert isinstance(results[1], dsp.PreviewResult)
    assert isinstance(results[2], dsp.PreviewResult)
    # The work was shared: each track was loaded once for all three renders.
    assert sorted(library.calls) == ["chords", "drums"]


async def test_too_many_waiting_renders_are_refused(library: Library) -> None:
    async with Previewer(library, format="wav", max_pending=1) as previewer:
        first = asyncio.create_task(previewer.render(timeline()))
        await asyncio.sleep(0)
        with pytest.raises(PreviewBusy):
            await previewer.render(timeline())
        await first


async def test_unknown_track_is_a_missing_source(library: Library) -> None:
    bad = Timeline(clips=(Clip("x", "nope", 0.0, 1.0, 0.0),))
    async with Previewer(library) as previewer:
        with pytest.raises(MissingSource):
            await previewer.render(bad)
        # The failure is not cached: it is raised again, and good renders still work.
        with pytest.raises(MissingSource):
            await previewer.render(bad)
        await previewer.render(timeline(), duration_seconds=1.0)


async def test_loader_must_return_project_audio(drums: Audio) -> None:
    mono = Audio(drums.samples[:1].copy(), 44100)
    async with Previewer(Library({"drums": mono})) as previewer:
        with pytest.raises(InvalidTimeline, match="stereo"):
            await previewer.render(Timeline(clips=(Clip("a", "drums", 0.0, 1.0, 0.0),)))


@pytest.mark.parametrize(
    ("start", "duration"),
    [(-1.0, 5.0), (0.0, 0.0), (0.0, 1e9), (float("nan"), 5.0), (0.0, float("inf"))],
)
async def test_bad_windows_are_refused(library: Library, start: float, duration: float) -> None:
    async with Previewer(library) as previewer:
        with pytest.raises(InvalidTimeline):
            await previewer.render(timeline(), start_seconds=start, duration_seconds=duration)


async def test_invalid_timeline_from_a_room_is_refused(library: Library) -> None:
    document = msgspec.to_builtins(timeline())
    document["clips"][0]["effects"] = [{"type": "reverb", "room_size": 7}]
    with pytest.raises(InvalidTimeline):
        dsp.timeline_from_builtins(document)
    forged = Timeline(clips=(Clip("a", "drums", 0.0, 1.0, 0.0, gain_db=float("inf")),))
    async with Previewer(library) as previewer:
        with pytest.raises(InvalidTimeline):
            await previewer.render(forged)


async def test_empty_timeline_previews_silence(library: Library) -> None:
    async with Previewer(library, format="wav") as previewer:
        result = await previewer.render(Timeline(), duration_seconds=2.0)
    audio = dsp.decode(result.data)
    assert audio.frames == 2 * 44100 and not np.any(audio.samples)
    assert result.loudness_lufs is None


async def test_cancelled_request_does_not_spoil_shared_work(library: Library) -> None:
    async with Previewer(library, format="wav") as previewer:
        first = asyncio.create_task(previewer.render(timeline()))
        second = asyncio.create_task(previewer.render(timeline()))

        async def loading() -> bool:
            return bool(library.calls)  # the shared work has started

        await eventually(loading, what="the shared render loading its sources")
        first.cancel()
        result = await second
        with pytest.raises(asyncio.CancelledError):
            await first
    assert dsp.decode(result.data).frames == 15 * 44100
    assert sorted(library.calls) == ["chords", "drums"]


async def test_forget_track_drops_everything_derived_from_it(library: Library) -> None:
    async with Previewer(library, format="wav") as previewer:
        await previewer.render(timeline(), duration_seconds=4.0)
        before = previewer.cache_stats()
        previewer.forget_track("drums")
        after = previewer.cache_stats()
        assert after.entries == before.entries - 3 and after.bytes < before.bytes
        await previewer.render(timeline(), duration_seconds=4.0)
    assert sorted(library.calls) == ["chords", "drums", "drums"]


def long_tone(seconds: float = 30.0) -> Audio:
    """A chord that changes every second, so any misplaced chunk shows."""
    t = np.arange(int(seconds * 44100)) / 44100
    freqs = 220.0 * 2 ** (np.floor(t) % 5 / 12)
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(freqs) / 44100)
    return Audio(np.stack([wave, wave]).astype(np.float32), 44100)


async def test_chunked_window_matches_the_whole_clip_render() -> None:
    tracks = {"long": long_tone()}
    plain = Timeline(bpm=120, clips=(Clip("a", "long", 0.0, 30.0, 2.0),))
    async with Previewer(Library(tracks), format="wav", target_lufs=None) as previewer:
        result = await previewer.render(plain, start_seconds=10.0, duration_seconds=9.0)
    whole = dsp.render_timeline(plain, tracks, target_lufs=None).audio.samples
    window = dsp.decode(result.data).samples
    np.testing.assert_allclose(window, whole[:, 10 * 44100 : 19 * 44100], atol=1e-4)


def spectra(samples: np.ndarray) -> np.ndarray:
    return np.abs(np.fft.rfft(samples.reshape(5, -1), axis=1)).ravel()


async def test_a_window_stretches_only_the_chunks_it_needs() -> None:
    tracks = {"long": long_tone()}
    stretched = Timeline(
        bpm=120,
        clips=(Clip("a", "long", 0.0, 30.0, 0.0, source_bpm=100.0, pitch_shift_semitones=2.0),),
    )
    library = Library(tracks)
    async with Previewer(library, format="wav", target_lufs=None) as previewer:
        result = await previewer.render(stretched, start_seconds=8.0, duration_seconds=5.0)
        chunks = previewer.cache_stats().entries - 2  # minus the source and the finished span
    total = int(25 * 44100 / CHUNK_FRAMES) + 1
    touched = (13 * 44100 - 1) // CHUNK_FRAMES - 8 * 44100 // CHUNK_FRAMES + 1
    assert chunks == touched < total
    window = dsp.decode(result.data).samples[0]
    whole = dsp.render_timeline(stretched, tracks, target_lufs=None, high_quality=False)
    reference = whole.audio.samples[0, 8 * 44100 : 13 * 44100]
    # Same notes at the same times: per-second spectra of both renders correlate.
    correlation = np.corrcoef(spectra(window), spectra(reference))[0, 1]
    assert correlation > 0.9


async def test_preview_places_a_stretched_clip_on_its_beat() -> None:
    t = np.arange(4 * 44100) / 44100
    burst = np.where(t >= 1.0, 0.5 * np.sin(2 * np.pi * 330 * (t - 1.0)), 0.0)
    tracks = {"b": Audio(np.stack([burst, burst]).astype(np.float32), 44100)}
    timeline = Timeline(
        bpm=120, clips=(Clip("a", "b", 1.0, 4.0, 5.0, source_bpm=110.0, pitch_shift_semitones=-2),)
    )
    async with Previewer(Library(tracks), format="wav") as previewer:
        result = await previewer.render(timeline, start_seconds=2.0, duration_seconds=2.0)
    envelope = np.abs(dsp.decode(result.data).samples).max(axis=0)
    onset = np.argmax(envelope > 0.05 * envelope.max()) / 44100
    assert abs(onset - 0.5) < 0.001  # beat 5 at 120 BPM is 2.5 s; the window starts at 2 s


async def test_clip_running_past_its_source_end(drums: Audio) -> None:
    # The source (exactly one chunk long) ends long before out_seconds: the
    # window after it is silent.
    source = Audio(np.tile(drums.samples, 2)[:, :CHUNK_FRAMES].copy(), 44100)
    timeline = Timeline(bpm=120, clips=(Clip("a", "d", 0.0, 60.0, 0.0),))
    async with Previewer(Library({"d": source}), format="wav") as previewer:
        late = await previewer.render(timeline, start_seconds=20.0, duration_seconds=2.0)
        early = await previewer.render(timeline, start_seconds=0.0, duration_seconds=10.0)
    assert not np.any(dsp.decode(late.data).samples)
    samples = dsp.decode(early.data).samples
    assert np.any(samples[:, : 5 * 44100])
    assert not np.any(samples[:, CHUNK_FRAMES + 100 :])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=timelines(max_source_seconds=18.0),
    start=st.floats(0.0, 30.0),
    duration=st.floats(0.5, 12.0),
)
def test_any_window_of_any_valid_timeline_previews(
    document: dict[str, object], start: float, duration: float
) -> None:
    rng = np.random.default_rng(1)
    noise = Audio((0.2 * rng.standard_normal((2, 20 * 44100))).astype(np.float32), 44100)
    timeline = dsp.timeline_from_builtins(document)

    async def preview() -> dsp.PreviewResult:
        async with Previewer(Library({"drums": noise, "chords": noise}), format="wav") as p:
            return await p.render(timeline, start_seconds=start, duration_seconds=duration)

    result = asyncio.run(preview())
    audio = dsp.decode(result.data)
    assert audio.frames == round((start + duration) * 44100) - round(start * 44100)
    assert np.isfinite(audio.samples).all()
    if result.true_peak_dbtp is not None:
        assert result.true_peak_dbtp <= -1.0


async def test_path_loader_decodes_files_and_reports_missing_ones(
    tmp_path: Path, drums: Audio
) -> None:
    dsp.encode_file(drums, tmp_path / "drums.flac")
    (tmp_path / "broken.mp3").write_bytes(b"ID3" + bytes(200))
    paths = {"drums": tmp_path / "drums.flac", "broken": tmp_path / "broken.mp3"}

    async def resolve(track_id: str) -> Path | None:
        return paths.get(track_id)

    async with Previewer(dsp.path_loader(resolve), format="wav") as previewer:
        good = Timeline(clips=(Clip("a", "drums", 0.0, 2.0, 0.0),))
        assert dsp.decode((await previewer.render(good, duration_seconds=2.0)).data).frames
        with pytest.raises(MissingSource):
            await previewer.render(Timeline(clips=(Clip("a", "nope", 0.0, 1.0, 0.0),)))
        with pytest.raises(dsp.CorruptAudio):
            await previewer.render(Timeline(clips=(Clip("a", "broken", 0.0, 1.0, 0.0),)))
