"""The analyze and render commands."""

from __future__ import annotations

import json
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


def test_analyze_json_lines(tmp_path: Path, chords: Audio) -> None:
    path = tmp_path / "keys.ogg"
    dsp.encode_file(chords, path)
    result = CliRunner().invoke(analyze, ["--json", str(path)])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert row["file"] == str(path)
    assert row["key_signature"] == "A minor"


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
