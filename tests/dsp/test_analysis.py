"""Analysis accuracy on the synthetic corpus, and the loudness meters against pyloudnorm."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

import dsp
from dsp import Audio, CorruptAudio
from dsp.analysis import KEY_THRESHOLD, TEMPO_THRESHOLD, estimate_key, estimate_tempo
from dsp.keys import parse_key
from tests.dsp.corpus import KeyItem, TempoItem


def _within(estimate: float, truth: float, factors: tuple[float, ...]) -> bool:
    return any(abs(estimate / (truth * f) - 1.0) <= 0.04 for f in factors)


def test_tempo_accuracy(tempo_items: list[TempoItem]) -> None:
    exact = octave = 0
    report = []
    for item in tempo_items:
        tempo = estimate_tempo(item.audio)
        assert tempo.bpm is not None, f"no tempo for {item.bpm} BPM {item.pattern}"
        exact += _within(tempo.bpm, item.bpm, (1.0,))
        octave += _within(tempo.bpm, item.bpm, (1.0, 2.0, 3.0, 1 / 2, 1 / 3))
        report.append(f"{item.bpm}->{tempo.bpm}")
    assert exact >= 0.9 * len(tempo_items), report
    assert octave >= 0.98 * len(tempo_items), report


def test_beats_follow_the_pattern(tempo_items: list[TempoItem]) -> None:
    """Beat times are evenly spaced at the true period (not a rounded BPM)."""
    item = tempo_items[3]
    tempo = estimate_tempo(item.audio)
    beats = np.array(tempo.beats)
    assert len(beats) >= 0.8 * item.audio.duration_seconds * item.bpm / 60
    period = 60.0 / item.bpm
    assert np.median(np.abs(np.diff(beats) - period)) < 0.012
    assert 0.0 < tempo.confidence <= 1.0


def test_key_accuracy(key_items: list[KeyItem]) -> None:
    right = 0
    report = []
    for item in key_items:
        key = estimate_key(item.audio)
        if key.key_signature is not None and parse_key(key.key_signature) == parse_key(item.key):
            right += 1
        report.append(f"{item.key}->{key.key_signature} ({key.confidence})")
    assert right >= 0.8 * len(key_items), report


def test_noise_has_no_key_and_no_tempo() -> None:
    rng = np.random.default_rng(5)
    noise = Audio((0.1 * rng.standard_normal((2, 44100 * 6))).astype(np.float32), 44100)
    key = estimate_key(noise)
    assert key.key_signature is None
    assert key.confidence < KEY_THRESHOLD
    tempo = estimate_tempo(noise)
    assert tempo.bpm is None and tempo.beats == ()
    assert tempo.confidence < TEMPO_THRESHOLD


def test_silence_analyses_to_nothing_rather_than_failing() -> None:
    result = dsp.analyze(Audio.silence(44100 * 5))
    assert result.bpm is None and result.beats == ()
    assert result.key_signature is None
    assert result.loudness_lufs is None and result.true_peak_dbtp is None
    assert result.duration_seconds == 5.0
    msgspec.json.encode(result)  # JSON-safe: no NaN or infinities


@pytest.mark.parametrize("seconds", [0.5, 3.7])
def test_loudness_matches_pyloudnorm(drums: Audio, chords: Audio, seconds: float) -> None:
    frames = int(seconds * 44100)
    for audio in (drums, chords):
        clip = Audio(audio.samples[:, :frames].copy(), 44100)
        reference = pyloudnorm.Meter(44100).integrated_loudness(clip.samples.T.astype(np.float64))
        assert dsp.analysis.integrated_loudness(clip) == pytest.approx(reference, abs=0.01)


def test_loudness_needs_400_ms(drums: Audio) -> None:
    short = Audio(drums.samples[:, :10000].copy(), 44100)
    assert dsp.analysis.integrated_loudness(short) is None


def test_true_peak_sees_peaks_between_samples() -> None:
    # A sine at fs/4 sampled 45 degrees off its crest: samples read 0.707 of the true peak.
    n = np.arange(44100)
    wave = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)
    audio = Audio(np.stack([wave, wave]), 44100)
    sample_peak_db = 20 * np.log10(np.abs(wave).max())
    assert sample_peak_db == pytest.approx(-3.01, abs=0.02)
    assert dsp.analysis.true_peak_dbtp(audio) == pytest.approx(0.0, abs=0.1)


def test_true_peak_agrees_with_finer_oversampling(chords: Audio) -> None:
    reference = 20 * np.log10(np.abs(resample_poly(chords.samples, 16, 1, axis=-1)).max())
    assert dsp.analysis.true_peak_dbtp(chords) == pytest.approx(reference, abs=0.3)


async def test_analyze_file_is_the_upload_hook(tmp_path: Path, drums: Audio) -> None:
    path = tmp_path / "upload.flac"
    dsp.encode_file(drums, path)
    result = await dsp.analyze_file(path)
    assert isinstance(result, dsp.Analysis)
    assert result.duration_seconds == pytest.approx(6.0, abs=0.001)
    assert result.bpm is not None and abs(result.bpm / 120.0 - 1) < 0.04
    assert result.loudness_lufs is not None and -40 < result.loudness_lufs < 0
    assert result.true_peak_dbtp is not None and result.true_peak_dbtp <= 0.5
    decoded = msgspec.json.decode(msgspec.json.encode(result), type=dsp.Analysis)
    assert decoded == result


async def test_analyze_file_refuses_bad_uploads(tmp_path: Path) -> None:
    path = tmp_path / "upload.mp3"
    path.write_bytes(b"ID3" + b"\x00" * 7 + b"not really an mp3" * 50)
    with pytest.raises(CorruptAudio):
        await dsp.analyze_file(path)
