"""Benchmark of the audio engine: preview render speed and analysis speed.

Run: ``python -m bench.bench_dsp``. Prints preview render speed for a
4-clip, 30-second timeline with effects as a multiple of real time, with a
cold cache (sources decoded, nothing stretched yet) and a warm one (every
clip cached), and analysis time per minute of audio. Figures are medians of a
few runs; the machine is shared, so read them as ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import msgspec

from dsp import FORMATS, Audio, AudioFormat, Previewer, analyze, decode_file, encode_file
from dsp.effects import Chorus, Compressor, Delay, Gain, HighpassFilter, Reverb
from dsp.timeline import Clip, Timeline, timeline_duration_seconds
from tests.dsp.corpus import chord_progression, drum_loop


def bench_sources() -> dict[str, Audio]:
    return {
        "drums-100": drum_loop(100.0, "rock", 20.0, seed=1),
        "keys-am": chord_progression(9, "minor", 20.0, seed=3),
        "drums-128": drum_loop(128.0, "four", 20.0, seed=2),
        "keys-d": chord_progression(2, "major", 20.0, seed=4),
    }


def bench_timeline() -> Timeline:
    """Four clips over 30 s at 120 BPM; each is stretched and/or shifted, with effects."""
    return Timeline(
        bpm=120.0,
        key="C major",
        clips=(
            Clip(
                id="a",
                track_id="drums-100",
                in_seconds=0.5,
                out_seconds=16.5,
                position_beats=0,
                source_bpm=100.0,
                effects=(Compressor(),),
            ),
            Clip(
                id="b",
                track_id="keys-am",
                in_seconds=0.0,
                out_seconds=15.0,
                position_beats=8,
                source_bpm=110.0,
                source_key="A minor",
                pitch_shift_semitones=-1.0,
                fade_in_seconds=1.0,
                fade_out_seconds=2.0,
                effects=(HighpassFilter(cutoff_hz=120.0), Reverb(room_size=0.6)),
            ),
            Clip(
                id="c",
                track_id="drums-128",
                in_seconds=0.0,
                out_seconds=16.0,
                position_beats=28,
                source_bpm=128.0,
                gain_db=-3.0,
                effects=(Delay(delay_seconds=0.25, feedback=0.3, mix=0.2),),
            ),
            Clip(
                id="d",
                track_id="keys-d",
                in_seconds=2.0,
                out_seconds=16.0,
                position_beats=32,
                source_key="D major",
                effects=(Chorus(),),
            ),
        ),
        master=(Compressor(threshold_db=-12.0, ratio=2.0), Gain(gain_db=1.0)),
    )


async def _timed(
    previewer: Previewer, timeline: Timeline, start: float, duration: float | None
) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of one render."""
    began, cpu = time.perf_counter(), time.process_time()
    await previewer.render(timeline, start_seconds=start, duration_seconds=duration)
    return time.perf_counter() - began, time.process_time() - cpu


def _with_gain(timeline: Timeline, clip_id: str, gain_db: float) -> Timeline:
    clips = tuple(
        msgspec.structs.replace(c, gain_db=gain_db) if c.id == clip_id else c
        for c in timeline.clips
    )
    return msgspec.structs.replace(timeline, clips=clips)


async def bench_preview(
    repeats: int, fmt: AudioFormat, high_quality: bool
) -> list[tuple[str, float, float]]:
    sources = bench_sources()
    timeline = bench_timeline()
    length = timeline_duration_seconds(timeline)

    async def loader(track_id: str) -> Audio:
        return sources[track_id]

    rows: list[tuple[str, float, float]] = []
    cases: list[tuple[str, float, float | None]] = [
        (f"whole timeline ({length:.1f} s)", 0.0, None),
        ("15 s window from 5 s", 5.0, 15.0),
    ]
    for label, start, duration in cases:
        heard = length - start if duration is None else duration
        cold, warm, edited = [], [], []
        for i in range(repeats):
            # A fresh previewer each time: its cache starts empty (sources are in memory).
            async with Previewer(loader, high_quality=high_quality, format=fmt) as previewer:
                cold.append(await _timed(previewer, timeline, start, duration))
                warm.append(await _timed(previewer, timeline, start, duration))
                # An edit that keeps the stretched audio: one clip's gain.
                clip = timeline.clips[i % len(timeline.clips)]
                changed = _with_gain(timeline, clip.id, clip.gain_db - 1.0 - i)
                edited.append(await _timed(previewer, changed, start, duration))
        for name, runs in (
            ("cold cache", cold),
            ("warm cache", warm),
            ("after a clip edit", edited),
        ):
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rows.append((f"{label}: {name}", heard / wall, heard / cpu))
    return rows


def bench_analysis(repeats: int) -> list[tuple[str, float]]:
    drums = drum_loop(124.0, "rock", 60.0, seed=7)
    keys = chord_progression(7, "major", 60.0, seed=8)
    track = Audio((drums.samples + keys.samples) * 0.6, drums.sample_rate)
    minutes = track.duration_seconds / 60.0
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        analyze(track)
        times.append(time.perf_counter() - began)
    rows = [("analysis of decoded audio, s per minute", statistics.median(times) / minutes)]
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("flac", "mp3"):
            path = os.path.join(tmp, f"track.{fmt}")
            encode_file(track, path)
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                analyze(decode_file(path))
                times.append(time.perf_counter() - began)
            rows.append(
                (f"decode {fmt} + analysis, s per minute", statistics.median(times) / minutes)
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--format", default="mp3", choices=list(FORMATS))
    parser.add_argument("--high-quality", action="store_true", help="high-quality stretching")
    args = parser.parse_args()
    quality = "high" if args.high_quality else "draft"
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"preview format {args.format}, {quality}-quality stretch, median of {args.repeats}"
    )
    print(f"  {'preview render speed (x real time)':<53} {'wall':>8} {'per CPU-s':>10}")
    rows = asyncio.run(bench_preview(args.repeats, args.format, args.high_quality))
    for label, wall, cpu in rows:
        print(f"  {label:<53} {wall:7.1f}x {cpu:9.1f}x")
    for label, value in bench_analysis(args.repeats):
        print(f"  {label:<53} {value:7.3f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
