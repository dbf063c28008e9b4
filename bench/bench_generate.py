"""Benchmark of the mashup generator on SYNTHETIC songs: quality measured on the rendered
audio by the project's own analysis, and the time to generate and render.

Run: ``python -m bench.bench_generate [--seeds 3] [--target 180]``.

Three synthetic songs of about three minutes (``tests.dsp.corpus.song`` with ``LONG_FORM``:
drums, bass, chords and a lead; intro, verses, choruses, a bridge, an outro) at 104, 108 and
112 BPM in A minor, C major and D major are encoded as FLAC and analysed the way an upload is
(``dsp.track.analyze_track``: tempo, key, bars, sections, stems). For each seed the arranger
(``dsp.arrange``) makes a draft of ``--target`` seconds, which is rendered in high quality
through a ``dsp.Previewer`` as the generation job renders it (FLAC, -14 LUFS, -1 dBTP), and
the rendered audio is analysed again (``dsp.analyze``):

* **tempo stability**: the tempo of every 20 s window (hop 10 s) against the project tempo
  (an octave error, half or double, is folded and counted apart);
* **beat-grid continuity at transitions**: every beat detected within two beats of a phrase
  boundary, against the project's grid (a beat every ``60 / bpm`` s from 0): median and 95th
  percentile of the offset in ms, beside the same figure away from transitions;
* **key consistency**: the share of 20 s windows whose detected key mixes with the project key
  on the Camelot wheel (and is the same key);
* **loudness** (integrated, LUFS) and **true peak** (dBTP) of the whole render;
* **duration error**: rendered length against the target, in seconds and bars;
* **time**: arranging; rendering cold (a fresh previewer: sources and stems decoded from
  FLAC, every clip stretched); warm (the same previewer, the next seed: sources cached,
  clips new); and the same draft again (everything cached).

These are synthetic songs with clean bar lines: the figures show the method works and catch
regressions; they are not figures on real recordings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from dsp import Audio, Previewer, analyze, decode, decode_file, encode_file
from dsp.arrange import ArrangeInput, Arrangement, arrange, compatible
from dsp.structure import Stem
from dsp.timeline import timeline_duration_seconds
from dsp.track import analyze_track
from tests.dsp.corpus import LONG_FORM, song

SONGS = ((104.0, 9, "minor"), (108.0, 0, "major"), (112.0, 2, "major"))
WINDOW_SECONDS = 20.0
HOP_SECONDS = 10.0


@dataclass
class Inputs:
    arrange: list[ArrangeInput]
    files: dict[str, Path]
    stems: dict[tuple[str, Stem], Path]
    truth: dict[str, tuple[float, str]]


def prepare(directory: Path) -> tuple[Inputs, float]:
    """Synthesise, encode and analyse the songs like uploads; the analysis seconds."""
    items: list[ArrangeInput] = []
    files: dict[str, Path] = {}
    stems: dict[tuple[str, Stem], Path] = {}
    truth: dict[str, tuple[float, str]] = {}
    seconds = 0.0
    for n, (bpm, tonic, mode) in enumerate(SONGS):
        made = song(bpm, tonic, mode, LONG_FORM, seed=700 + n)
        track_id = f"song{n}"
        path = directory / f"{track_id}.flac"
        encode_file(made.audio, path, format="flac")
        began = time.perf_counter()
        result = analyze_track(decode_file(path))
        seconds += time.perf_counter() - began
        assert result.stems is not None
        separated: tuple[Stem, ...] = ("harmonic", "percussive")  # the order of result.stems
        for stem, audio in zip(separated, result.stems, strict=True):
            stem_path = directory / f"{track_id}-{stem}.flac"
            encode_file(audio, stem_path, format="flac")
            stems[(track_id, stem)] = stem_path
        # As the upload worker records it once the stems are stored.
        structure = msgspec.structs.replace(result.structure, has_stems=True)
        items.append(ArrangeInput(track_id=track_id, structure=structure))
        files[track_id] = path
        truth[track_id] = (bpm, made.key)
    return Inputs(items, files, stems, truth), seconds


def previewer(inputs: Inputs) -> Previewer:
    async def load(track_id: str) -> Audio:
        return await asyncio.to_thread(decode_file, inputs.files[track_id])

    async def load_stem(track_id: str, stem: Stem) -> Audio | None:
        return await asyncio.to_thread(decode_file, inputs.stems[(track_id, stem)])

    return Previewer(load, stem_loader=load_stem, workers=2, cache_bytes=2 * 1024**3)


@dataclass
class Quality:
    tempo_deviation: list[float]  # % per window, octave-folded
    octave_windows: int
    windows: int
    transition_ms: list[float]
    steady_ms: list[float]
    key_mixing: int
    key_same: int
    key_unknown: int
    lufs: float | None
    dbtp: float | None
    duration_error_s: float
    duration_error_bars: float


def measure(
    audio: Audio, result: Arrangement, target: float, lufs: float | None, dbtp: float | None
) -> Quality:
    plan = result.plan
    bpm, key = plan.bpm, plan.key
    rate = audio.sample_rate
    deviations, octaves, windows = [], 0, 0
    mixing = same = unknown = 0
    start = 0.0
    while start + WINDOW_SECONDS <= audio.duration_seconds + 1e-9:
        piece = Audio(
            np.ascontiguousarray(
                audio.samples[:, int(start * rate) : int((start + WINDOW_SECONDS) * rate)]
            ),
            rate,
        )
        found = analyze(piece)
        windows += 1
        if found.bpm is not None:
            folded = min((found.bpm * f for f in (0.5, 1.0, 2.0)), key=lambda x: abs(x / bpm - 1))
            if folded != found.bpm:
                octaves += 1
            deviations.append(abs(folded / bpm - 1) * 100)
        if found.key_signature is None or key is None:
            unknown += 1
        else:
            mixing += compatible(found.key_signature, key)
            same += found.key_signature == key
        start += HOP_SECONDS
    whole = analyze(audio)
    beat = 60.0 / bpm
    boundaries = sorted({c.bar * 4 * beat for c in plan.clips if c.bar > 0})
    near: list[float] = []
    far: list[float] = []
    for t in whole.beats:
        offset = abs(t - round(t / beat) * beat) * 1000
        close = any(abs(t - b) <= 2 * beat for b in boundaries)
        (near if close else far).append(offset)
    duration = audio.duration_seconds
    return Quality(
        deviations,
        octaves,
        windows,
        near,
        far,
        mixing,
        same,
        unknown,
        lufs,
        dbtp,
        duration - target,
        (duration - target) / (4 * beat),
    )


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run(seeds: int, target: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bt-bench-gen-") as tmp:
        began = time.perf_counter()
        inputs, analysis_seconds = await asyncio.to_thread(prepare, Path(tmp))
        audio_minutes = sum(i.structure.duration for i in inputs.arrange) / 60
        print(
            f"corpus: {len(SONGS)} synthetic songs, {audio_minutes:.1f} min in all "
            f"({time.perf_counter() - began:.1f} s to make); analysis "
            f"{analysis_seconds / audio_minutes:.2f} s per minute (with stems)"
        )
        for item in inputs.arrange:
            s = item.structure
            true_bpm, true_key = inputs.truth[item.track_id]
            print(
                f"  {item.track_id}: {s.duration:.0f} s, tempo {s.bpm} (true {true_bpm}), "
                f"key {s.key} (true {true_key}), {len(s.downbeats)} bars, "
                f"{len(s.sections)} sections"
            )
        cold = previewer(inputs)
        times: dict[str, list[float]] = {"arrange": [], "cold": [], "warm": [], "again": []}
        cpu: dict[str, list[float]] = {"cold": [], "warm": [], "again": []}
        drafts = set()
        qualities = []
        for seed in range(seeds):
            t0 = time.perf_counter()
            result = arrange(inputs.arrange, target, seed)
            times["arrange"].append(time.perf_counter() - t0)
            drafts.add(msgspec.json.encode(result.timeline))
            t0, c0 = time.perf_counter(), time.process_time()  # the first render is the cold one
            out = await cold.render(
                result.timeline,
                duration_seconds=None,
                key=seed,
                format="flac",
                high_quality=True,
            )
            times["cold" if seed == 0 else "warm"].append(time.perf_counter() - t0)
            cpu["cold" if seed == 0 else "warm"].append(time.process_time() - c0)
            if seed == 0:
                t0, c0 = time.perf_counter(), time.process_time()
                await cold.render(
                    result.timeline,
                    duration_seconds=None,
                    key="again",
                    format="flac",
                    high_quality=True,
                )
                times["again"].append(time.perf_counter() - t0)
                cpu["again"].append(time.process_time() - c0)
            audio = decode(out.data, filename="out.flac")
            assert abs(audio.duration_seconds - timeline_duration_seconds(result.timeline)) < 0.05
            quality = await asyncio.to_thread(
                measure, audio, result, target, out.loudness_lufs, out.true_peak_dbtp
            )
            qualities.append(quality)
            plan = result.plan
            layered = sum(1 for c in plan.clips if c.stem == "percussive")
            print(
                f"seed {seed}: {plan.bpm} BPM, {plan.key}, {plan.bars} bars, "
                f"{len(plan.clips)} clips ({layered} drum layers), form {'-'.join(plan.form)}"
            )
        cold.close()

    def line(label: str, value: str) -> None:
        print(f"  {label:<58}{value:>16}")

    q = qualities
    dev = [d for x in q for d in x.tempo_deviation]
    near = [d for x in q for d in x.transition_ms]
    far = [d for x in q for d in x.steady_ms]
    windows = sum(x.windows for x in q)
    print(
        f"quality over {seeds} drafts of {target:.0f} s ({len(drafts)} different), "
        "measured on the rendered audio"
    )
    line("tempo: windows within 1 % of the project tempo", f"{sum(d <= 1 for d in dev)}/{windows}")
    line("tempo: median / worst deviation (%)", f"{pct(dev, 50):.2f} / {max(dev):.2f}")
    line("tempo: windows read an octave off (folded)", f"{sum(x.octave_windows for x in q)}")
    line(
        "grid at transitions: median / p95 offset (ms)",
        f"{pct(near, 50):.1f} / {pct(near, 95):.1f}",
    )
    line(
        "grid away from transitions: median / p95 (ms)", f"{pct(far, 50):.1f} / {pct(far, 95):.1f}"
    )
    line("beats measured near / away from transitions", f"{len(near)} / {len(far)}")
    line(
        "key: windows that mix with the project key (Camelot)",
        f"{sum(x.key_mixing for x in q)}/{windows}",
    )
    line("key: windows in the project key itself", f"{sum(x.key_same for x in q)}/{windows}")
    line("key: windows with no confident key", f"{sum(x.key_unknown for x in q)}/{windows}")
    lufs = [x.lufs for x in q if x.lufs is not None]
    peaks = [x.dbtp for x in q if x.dbtp is not None]
    line("loudness (LUFS), min / max", f"{min(lufs):.2f} / {max(lufs):.2f}")
    line("true peak (dBTP), max", f"{max(peaks):.2f}")
    errors = [abs(x.duration_error_s) for x in q]
    line("duration error (s), worst", f"{max(errors):.3f}")
    line("duration error (bars), worst", f"{max(abs(x.duration_error_bars) for x in q):.3f}")
    print(f"time (machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
    line("arrange (s), median", f"{statistics.median(times['arrange']):.3f}")
    warm = times["warm"] or times["cold"]
    warm_cpu = cpu["warm"] or cpu["cold"]
    line("render (s, wall / CPU of all threads)", "")
    line(
        "  cold: decode sources and stems, stretch every clip",
        f"{times['cold'][0]:.1f} / {cpu['cold'][0]:.1f}",
    )
    line(
        "  warm: the next seed, sources cached (median)",
        f"{statistics.median(warm):.1f} / {statistics.median(warm_cpu):.1f}",
    )
    line("  the same draft again, all cached", f"{times['again'][0]:.1f} / {cpu['again'][0]:.1f}")
    line(
        "  x real time, cold / warm (wall)",
        f"{target / times['cold'][0]:.1f}x / {target / statistics.median(warm):.1f}x",
    )
    line(
        "  x real time per CPU-second, cold / warm",
        f"{target / cpu['cold'][0]:.1f}x / {target / statistics.median(warm_cpu):.1f}x",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=180.0)
    args = parser.parse_args()
    asyncio.run(run(args.seeds, args.target))


if __name__ == "__main__":
    main()
