"""Bars, sections and peaks on synthetic songs whose structure is known, and the invariance
of the analysis to padding and looping."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from dsp import Audio
from dsp.analysis import analyze, estimate_key, estimate_tempo, features
from dsp.keys import parse_key
from dsp.peaks import MAX_PEAKS, SAMPLES_PER_PEAK, peaks
from dsp.sections import structure
from dsp.structure import Structure
from dsp.track import analyze_track
from tests.dsp.corpus import SHORT_FORM, SongItem, drum_loop, song


@pytest.fixture(scope="module")
def songs() -> list[SongItem]:
    return [
        song(124.0, 5, "minor", SHORT_FORM, seed=3003),
        song(137.0, 10, "major", SHORT_FORM, seed=3004),
    ]


def _analysed(item: SongItem) -> Structure:
    feats = features(item.audio)
    return structure(feats, analyze(item.audio, feats))


@pytest.fixture(scope="module")
def structures(songs: list[SongItem]) -> list[Structure]:
    return [_analysed(item) for item in songs]


def test_downbeats_fall_on_the_bar_lines(
    songs: list[SongItem], structures: list[Structure]
) -> None:
    for item, found in zip(songs, structures, strict=True):
        assert found.downbeat_confidence > 0.5
        truth = np.array(item.downbeats)
        # Every found downbeat is within 70 ms of a true one (the phase is right, not
        # off by a beat), and nearly every bar was found.
        errors = [float(np.min(np.abs(truth - t))) for t in found.downbeats]
        assert max(errors) < 0.07, errors
        assert len(found.downbeats) >= len(truth) - 1
        # The drum-less intro has bars too: the grid reaches back to where sound starts.
        assert abs(found.downbeats[0] - truth[0]) < 0.07
        bar = 4 * 60.0 / item.bpm
        assert np.allclose(np.diff(found.downbeats), bar, atol=0.05)
        # Beats are a regular grid, four per bar.
        assert found.downbeats == found.beats[found.beats.index(found.downbeats[0]) :: 4]


def test_section_boundaries_within_one_bar(
    songs: list[SongItem], structures: list[Structure]
) -> None:
    for item, found in zip(songs, structures, strict=True):
        bar = 4 * 60.0 / item.bpm
        truth = [item.downbeats[b] for b in item.boundaries]
        starts = [s.start for s in found.sections[1:]]
        assert len(starts) == len(truth), (starts, truth)
        assert all(abs(a - b) <= bar + 0.07 for a, b in zip(starts, truth, strict=True))
        # Sections tile the bars, in order, with times on the downbeats.
        assert found.sections[0].start_bar == 0
        assert found.sections[-1].end_bar == len(found.downbeats)
        for a, b in zip(found.sections, found.sections[1:], strict=False):
            assert a.end_bar == b.start_bar and a.end == b.start
        for i, section in enumerate(found.sections):
            assert section.id == f"s{i}"
            assert section.start == found.downbeats[section.start_bar]
            assert 0.0 <= section.energy <= 1.0


def test_repeated_sections_share_a_group(
    songs: list[SongItem], structures: list[Structure]
) -> None:
    for item, found in zip(songs, structures, strict=True):
        assert len(found.sections) == len(item.sections)
        labels = [s.label for s in item.sections]
        groups = [s.group for s in found.sections]
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                assert (labels[i] == labels[j]) == (groups[i] == groups[j]), (labels, groups)
        # The choruses are the loudest part, the intro and outro the quietest.
        energy = {label: found.sections[i].energy for i, label in enumerate(labels)}
        assert energy["chorus"] == 1.0
        assert energy["intro"] < energy["verse"] < energy["chorus"]


def test_structure_round_trips_as_json(structures: list[Structure]) -> None:
    data = msgspec.json.encode(structures[0])
    assert msgspec.json.decode(data, type=Structure) == structures[0]


def test_no_tempo_means_no_bars() -> None:
    noise = np.random.default_rng(3).standard_normal((2, 44100 * 6)).astype(np.float32) * 0.1
    found = _analysed_audio(Audio(noise, 44100))
    assert found.bpm is None and found.downbeats == () and found.sections == ()


def _analysed_audio(audio: Audio) -> Structure:
    feats = features(audio)
    return structure(feats, analyze(audio, feats))


def _pad(audio: Audio, before: float, after: float) -> Audio:
    frames = ((0, 0), (round(before * audio.sample_rate), round(after * audio.sample_rate)))
    return Audio(np.pad(audio.samples, frames), audio.sample_rate)


def test_silence_around_the_music_changes_no_answer(songs: list[SongItem]) -> None:
    item = songs[0]
    clip = Audio(item.audio.samples[:, : 30 * 44100].copy(), 44100)
    plain = analyze(clip)
    padded = analyze(_pad(clip, 1.7, 2.3))
    assert padded.bpm == pytest.approx(plain.bpm, abs=0.01)
    assert padded.key_signature == plain.key_signature
    assert padded.key_confidence == pytest.approx(plain.key_confidence, abs=0.005)
    # The beats move with the padding, and only by it (to a fraction of an 11.6 ms frame:
    # the trimmed ends differ by a few samples where the music itself is near zero).
    assert len(padded.beats) == len(plain.beats)
    assert np.allclose(np.array(padded.beats) - 1.7, plain.beats, atol=0.005)
    assert padded.duration_seconds == pytest.approx(plain.duration_seconds + 4.0, abs=0.001)


def test_a_loop_repeated_keeps_its_tempo_and_key() -> None:
    # Exactly four bars at 120 BPM, repeated three times.
    loop = drum_loop(120.0, "rock", 8.0, seed=31)
    chords = song(120.0, 2, "major", (("verse", 4),), seed=32).audio
    bars = Audio(loop.samples + chords.samples[:, : loop.frames], 44100)
    once = analyze(bars)
    thrice = analyze(Audio(np.tile(bars.samples, 3), 44100))
    assert once.bpm is not None and thrice.bpm is not None
    assert thrice.bpm == pytest.approx(once.bpm, rel=0.01)
    assert abs(thrice.bpm / 120.0 - 1) < 0.02
    assert thrice.key_signature == once.key_signature


def test_a_short_clip_says_why_it_has_no_tempo(songs: list[SongItem]) -> None:
    short = Audio(songs[0].audio.samples[:, (2 * 44100) : int(4.8 * 44100)].copy(), 44100)
    for audio in (short, _pad(short, 1.7, 0.0)):
        result = analyze(audio)
        assert result.bpm is None and result.beats == ()
        assert any("only 2.8 s of sound" in note for note in result.notes), result.notes
        assert estimate_tempo(audio).note is not None


def test_keys_of_the_songs(songs: list[SongItem]) -> None:
    for item in songs:
        key = estimate_key(item.audio)
        assert key.key_signature is not None
        tonic, mode = parse_key(key.key_signature)
        true_tonic, true_mode = parse_key(item.key)
        relative = (true_tonic + (3 if true_mode == "minor" else 9)) % 12
        # Right, or its relative (the same notes): never a confident unrelated key.
        assert (tonic, mode) == (true_tonic, true_mode) or (tonic == relative and mode != true_mode)


def test_peaks_sizes_and_values() -> None:
    rate = 44100
    t = np.arange(10 * rate) / rate
    wave = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    wave[5 * rate :] *= 0.1
    result = peaks(Audio(np.stack([wave, -wave]), rate))
    assert result.duration == 10.0
    assert [len(level.max) for level in result.levels] == [
        -(-10 * rate // size) for size in SAMPLES_PER_PEAK
    ]
    for level, size in zip(result.levels, SAMPLES_PER_PEAK, strict=True):
        assert level.seconds_per_peak == pytest.approx(size / rate)
        assert max(level.max) == 64 and min(level.min) == -64  # 0.5 of full scale, rounded out
        assert level.max[-1] == 7  # the quiet part: 0.05 of full scale
    assert len(msgspec.json.encode(result)) < 40_000


def test_peaks_of_long_and_empty_audio() -> None:
    # Long: the finest level would exceed MAX_PEAKS windows and is left out.
    frames = (MAX_PEAKS + 1) * SAMPLES_PER_PEAK[0]
    long = peaks(Audio(np.zeros((2, frames), np.float32), 44100))
    assert [round(level.seconds_per_peak * 44100) for level in long.levels] == list(
        SAMPLES_PER_PEAK[1:]
    )
    assert all(v == 0 for level in long.levels for v in level.max)
    empty = peaks(Audio.silence(0))
    assert all(level.max == () for level in empty.levels)


def test_analyze_track_does_it_all(songs: list[SongItem]) -> None:
    item = songs[1]
    result = analyze_track(item.audio)
    assert result.analysis.bpm is not None
    assert result.structure.sections and result.structure.has_stems is False
    assert result.peaks.levels
    assert result.stems is not None
    harmonic, _ = result.stems
    assert harmonic.frames == item.audio.frames
    assert analyze_track(item.audio, stems=False).stems is None
