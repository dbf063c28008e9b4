"""The analyze and render commands."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import msgspec
from click.testing import CliRunner

import dsp
from dsp import Audio
from dsp.cli import analyze, render


def test_analyze_prints_a_table_and_flags_bad_files(tmp_path: Path, drums: Audio) -> None:
    good = tmp_path / "loop.wav"
    dsp.encode_file(drums, good)
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC" + b"\x00" * 100)
    result = CliRunner(env={"COLUMNS": "240"}).invoke(analyze, [str(good), str(bad)])
    assert result.exit_code == 1
    assert "loop.wav" in result.output and "CorruptAudio" in result.output
    assert "120." in result.output or "119." in result.output  # the BPM column


def _wav_header(rate: int, channels: int) -> bytes:
    block = channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) % 2**32, block % 2**16, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    data = bytes(4000)
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_analyze_stays_readable_at_80_columns_and_says_what_is_wrong(
    tmp_path: Path, drums: Audio
) -> None:
    name = "sample-with-a-rather-long-descriptive-file-name-from-a-sample-pack.wav"
    dsp.encode_file(drums, tmp_path / name)
    short = Audio(drums.samples[:, : int(2.8 * 44100)].copy(), 44100)
    dsp.encode_file(short, tmp_path / "short.flac")
    (tmp_path / "one-hertz.wav").write_bytes(_wav_header(1, 2))
    (tmp_path / "zero-hertz.wav").write_bytes(_wav_header(0, 2))
    (tmp_path / "channels.wav").write_bytes(_wav_header(44100, 65535))
    (tmp_path / "song.m4a").write_bytes(bytes(200))
    files = [
        name,
        "short.flac",
        "one-hertz.wav",
        "zero-hertz.wav",
        "channels.wav",
        "song.m4a",
    ]
    # CliRunner is not a terminal, like a pipe: rich assumes 80 columns.
    result = CliRunner().invoke(analyze, [str(tmp_path / f) for f in files])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, result.output
    flat = "".join(line.strip(" │") for line in lines)
    assert name in flat.replace("│", "").replace(" ", "")  # folded, never cut
    text = " ".join(result.output.split())
    assert "no tempo: only 2.8 s of sound" in text
    assert "sample rate of 1 Hz" in text and "sample rate of 0 Hz" in text
    assert "claims 65535 channels" in text
    assert "'.m4a'" in text and "supported formats: WAV" in text
    assert "Failed to open" not in text and "no audio frames" not in text


def test_analyze_json_lines(tmp_path: Path, chords: Audio) -> None:
    path = tmp_path / "keys.ogg"
    dsp.encode_file(chords, path)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(_wav_header(1, 2))
    result = CliRunner().invoke(analyze, ["--json", str(path), str(bad)])
    assert result.exit_code == 1, result.output
    row, refused = (json.loads(line) for line in result.output.splitlines())
    assert row["file"] == str(path)
    assert row["key_signature"] == "A minor"
    assert row["notes"] == []
    assert refused == {
        "file": str(bad),
        "error": "WAV header claims a sample rate of 1 Hz; supported: 4000..768000 Hz",
    }


def write_job(tmp_path: Path, drums: Audio, chords: Audio, **timeline: object) -> Path:
    (tmp_path / "tracks").mkdir()
    dsp.encode_file(drums, tmp_path / "tracks" / "drums.flac")
    dsp.encode_file(chords, tmp_path / "tracks" / "chords.wav")
    job = {
        "sources": {"d": "tracks/drums.flac", "c": "tracks/chords.wav"},
        "timeline": {
            "bpm": 120,
            "clips": [
                {
                    "id": "1",
                    "track_id": "d",
                    "in_seconds": 0,
                    "out_seconds": 4,
                    "position_beats": 0,
                },
                {
                    "id": "2",
                    "track_id": "c",
                    "in_seconds": 0,
                    "out_seconds": 4,
                    "position_beats": 4,
                    "effects": [{"type": "reverb"}],
                },
            ],
            **timeline,
        },
    }
    path = tmp_path / "job.json"
    path.write_bytes(msgspec.json.encode(job))
    return path


def test_render_writes_the_mashup(tmp_path: Path, drums: Audio, chords: Audio) -> None:
    job = write_job(tmp_path, drums, chords)
    out = tmp_path / "mashup.flac"
    result = CliRunner().invoke(render, [str(job), "-o", str(out), "--draft"])
    assert result.exit_code == 0, result.output
    audio = dsp.decode_file(out)
    assert audio.duration_seconds > 6.0
    assert dsp.analysis.integrated_loudness(audio) is not None


def test_render_refuses_bad_jobs(tmp_path: Path, drums: Audio, chords: Audio) -> None:
    job = write_job(tmp_path, drums, chords, master=[{"type": "vst3", "path": "/x.vst3"}])
    result = CliRunner().invoke(render, [str(job), "-o", str(tmp_path / "x.wav")])
    assert result.exit_code == 1
    assert "InvalidTimeline" in result.output
    assert not (tmp_path / "x.wav").exists()
    (tmp_path / "again").mkdir()
    good = write_job(tmp_path / "again", drums, chords)
    result = CliRunner().invoke(render, [str(good), "-o", str(tmp_path / "x.aiff")])
    assert result.exit_code == 1 and "UnsupportedFormat" in result.output


def _render(tmp_path: Path, job: Path, *args: str) -> tuple[int, str, Path]:
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(render, [str(job), "-o", str(out), *args])
    return result.exit_code, " ".join(result.output.split()), out


def test_render_refuses_what_would_write_nonsense(
    tmp_path: Path, drums: Audio, chords: Audio
) -> None:
    (tmp_path / "a").mkdir()
    past_end = write_job(tmp_path / "a", drums, chords)
    job = msgspec.json.decode(past_end.read_bytes())
    job["timeline"]["clips"][0]["out_seconds"] = 9.0  # the drums last 6 s
    past_end.write_bytes(msgspec.json.encode(job))
    code, text, out = _render(tmp_path, past_end)
    assert code == 1 and "ends at 9.000 s, after the end of track 'd'" in text
    assert not out.exists()

    job["timeline"]["clips"] = []
    past_end.write_bytes(msgspec.json.encode(job))
    code, text, out = _render(tmp_path, past_end)
    assert code == 1 and "no clips to render" in text and not out.exists()

    (tmp_path / "b").mkdir()
    good = write_job(tmp_path / "b", drums, chords)
    code, text, out = _render(tmp_path, good, "--start", "60")
    assert code == 1 and "--start 60 s is at or past the end" in text and not out.exists()
    for flag, value, says in (
        ("--target-lufs", "50", "target loudness 50.0 LUFS is outside -40..-5"),
        ("--target-lufs", "nan", "target loudness nan LUFS"),
        ("--ceiling-dbtp", "3", "true-peak ceiling 3.0 dBTP is outside -20..0"),
    ):
        code, text, out = _render(tmp_path, good, flag, value)
        assert code == 1 and says in text, text
        assert not out.exists()


def test_draft_mp3_stays_under_the_ceiling_as_written(
    tmp_path: Path, drums: Audio, chords: Audio
) -> None:
    job = write_job(tmp_path, drums, chords)
    out = tmp_path / "draft.mp3"
    result = CliRunner().invoke(render, [str(job), "-o", str(out), "--draft"])
    assert result.exit_code == 0, result.output
    written = dsp.decode_file(out)
    peak = dsp.analysis.true_peak_dbtp(written)
    assert peak is not None and peak <= -1.0
    # What the command prints is what the file measures.
    assert f"{peak:.1f} dBTP, measured on the written file" in " ".join(result.output.split())
