"""Decoding and encoding: round trips, resampling, and clean refusal of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsp
from dsp import Audio, AudioError, CorruptAudio, UnsupportedFormat
from dsp.errors import AudioTooLong


def tone(seconds: float = 1.0, rate: int = 44100, channels: int = 2) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * 440.0 * t)
    return Audio(np.tile(wave, (channels, 1)).astype(np.float32), rate)


@pytest.fixture(scope="module")
def encoded() -> dict[str, bytes]:
    audio = tone(2.0)
    return {fmt: dsp.encode(audio, fmt) for fmt in dsp.FORMATS}


@pytest.mark.parametrize("fmt", dsp.FORMATS)
def test_round_trip_keeps_length_and_signal(encoded: dict[str, bytes], fmt: str) -> None:
    audio = dsp.decode(encoded[fmt], filename=f"take.{fmt}")
    assert audio.sample_rate == dsp.PROJECT_RATE
    assert audio.channels == 2
    # MP3 adds encoder delay and padding; everything else is frame-exact.
    tolerance = 0.1 if fmt == "mp3" else 0.0
    assert abs(audio.duration_seconds - 2.0) <= tolerance
    spectrum = np.abs(np.fft.rfft(audio.samples[0]))
    peak_hz = np.argmax(spectrum) * audio.sample_rate / audio.frames
    assert abs(peak_hz - 440.0) < 2.0
    info = dsp.probe(encoded[fmt])
    assert info.format == fmt and info.channels == 2 and info.sample_rate == 44100


def test_mono_and_other_rates_become_stereo_at_the_project_rate() -> None:
    data = dsp.encode(tone(1.0, rate=22050, channels=1), "wav")
    audio = dsp.decode(data)
    assert audio.channels == 2 and audio.sample_rate == 44100
    assert audio.frames == 44100
    assert np.allclose(audio.samples[0], audio.samples[1])


def test_mp3_encoding_resamples_rates_mp3_cannot_hold() -> None:
    data = dsp.encode(tone(1.0, rate=22050), "mp3")
    assert dsp.probe(data).sample_rate == 44100


def test_files_round_trip_and_extension_picks_format(tmp_path: Path) -> None:
    path = tmp_path / "out.flac"
    dsp.encode_file(tone(0.5), path)
    assert path.read_bytes()[:4] == b"fLaC"
    assert dsp.decode_file(path).frames == 22050


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world" * 100, bytes(range(256)) * 50, b"RIFF\x00\x00\x00\x00WAVEjunk"],
    ids=["empty", "text", "binary", "riff-junk"],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(AudioError):
        dsp.decode(data)
    with pytest.raises(AudioError):
        dsp.probe(data)


@pytest.mark.parametrize("fmt", dsp.FORMATS)
@pytest.mark.parametrize("keep", [0.02, 0.5, 0.97])
def test_truncated_files_are_refused(encoded: dict[str, bytes], fmt: str, keep: float) -> None:
    data = encoded[fmt]
    with pytest.raises(CorruptAudio):
        dsp.decode(data[: int(len(data) * keep)], filename=f"cut.{fmt}")


@pytest.mark.parametrize("fmt", dsp.FORMATS)
def test_one_byte_short_is_refused(encoded: dict[str, bytes], fmt: str) -> None:
    with pytest.raises(CorruptAudio):
        dsp.decode(encoded[fmt][:-1])


def test_unsupported_extension_is_refused(encoded: dict[str, bytes], tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="extension"):
        dsp.decode(encoded["wav"], filename="song.txt")
    path = tmp_path / "song.aiff"
    path.write_bytes(encoded["wav"])
    with pytest.raises(UnsupportedFormat):
        dsp.decode_file(path)


def test_extension_must_match_content(encoded: dict[str, bytes]) -> None:
    with pytest.raises(UnsupportedFormat, match="holds wav"):
        dsp.decode(encoded["wav"], filename="song.mp3")


def test_garbage_with_an_audio_extension_is_corrupt() -> None:
    with pytest.raises(CorruptAudio):
        dsp.decode(b"\x00" * 4000, filename="song.flac")


def test_limits_on_duration_and_size(encoded: dict[str, bytes], tmp_path: Path) -> None:
    with pytest.raises(AudioTooLong):
        dsp.decode(encoded["flac"], max_seconds=1.0)
    path = tmp_path / "big.wav"
    path.write_bytes(encoded["wav"])
    with pytest.raises(AudioTooLong):
        dsp.decode_file(path, max_bytes=1000)


def test_encode_refuses_unknown_format() -> None:
    with pytest.raises(UnsupportedFormat):
        dsp.encode(tone(0.1), "aiff")  # type: ignore[arg-type]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fmt=st.sampled_from(dsp.FORMATS),
    position=st.floats(0.0, 1.0),
    length=st.integers(1, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_damaged_bytes_never_crash(
    encoded: dict[str, bytes], fmt: str, position: float, length: int, seed: int
) -> None:
    """Overwriting a run of bytes anywhere either still decodes or raises AudioError."""
    data = bytearray(encoded[fmt])
    start = int(position * (len(data) - length))
    data[start : start + length] = np.random.default_rng(seed).bytes(length)
    try:
        audio = dsp.decode(bytes(data))
    except AudioError:
        return
    assert np.isfinite(audio.samples).all()


@pytest.mark.parametrize("fmt", dsp.FORMATS)
def test_probe_file_checks_files_without_reading_them_whole(
    encoded: dict[str, bytes], tmp_path: Path, fmt: str
) -> None:
    whole = tmp_path / f"whole.{fmt}"
    whole.write_bytes(encoded[fmt])
    info = dsp.probe_file(whole)
    assert info.format == fmt and info.duration_seconds == pytest.approx(2.0, abs=0.1)
    # An upload stored under a temporary name is checked against the client's name.
    stored = tmp_path / "upload.part"
    stored.write_bytes(encoded[fmt][: len(encoded[fmt]) // 2])
    with pytest.raises(CorruptAudio):
        dsp.probe_file(stored, filename=f"song.{fmt}")
    stored.write_bytes(encoded[fmt])
    assert dsp.probe_file(stored, filename=f"song.{fmt}") == info
    other = "flac" if fmt != "flac" else "wav"
    with pytest.raises(UnsupportedFormat):
        dsp.probe_file(stored, filename=f"song.{other}")
    stored.write_bytes(b"")
    with pytest.raises(CorruptAudio):
        dsp.probe_file(stored, filename=f"song.{fmt}")


def test_unfinalised_wav_size_is_refused(encoded: dict[str, bytes]) -> None:
    data = bytearray(encoded["wav"])
    size_at = data.find(b"data") + 4
    data[size_at : size_at + 4] = b"\xff\xff\xff\xff"
    with pytest.raises(CorruptAudio, match="truncated"):
        dsp.decode(bytes(data), max_seconds=None)
