"""Benchmark of the structure analysis on SYNTHETIC songs with known bars and sections.

Run: ``python -m bench.bench_structure [--songs N] [--long]``. Synthesises songs
(drums, bass, chords and a lead in a known form: intro, verse, chorus, verse, chorus,
outro; ``--long`` adds a bridge and longer sections, three minutes a song) at tempos over
85..150 BPM in major and minor keys, analyses them, and prints:

* downbeat F-measure, ±70 ms (the tolerance of the MIREX/madmom downbeat evaluations);
* section-boundary F-measure, ±1 bar (plus 70 ms) and ±0.5 s (the tighter MIREX figure);
* repetition groups: the share of section pairs whose same/different-group verdict
  matches the truth (pairwise agreement over estimated sections matched to true ones);
* tempo and key accuracy on the same songs;
* analysis time (features, tempo, key, loudness, bars, sections, peaks; and the
  harmonic/percussive split separately) per minute of audio.

These are synthetic songs: clean bar lines, exact repeats. They show the method works
and catch regressions; they are not comparable one-to-one with figures on real
recordings (see docs/audio.md for those).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence

import numpy as np

from dsp.analysis import analyze, features
from dsp.keys import parse_key, semitones_between
from dsp.peaks import peaks
from dsp.sections import structure
from dsp.stems import split
from dsp.structure import Structure
from tests.dsp.corpus import LONG_FORM, SHORT_FORM, SongItem, song_corpus


def f_measure(estimated: Sequence[float], reference: Sequence[float], tolerance: float) -> float:
    """F-measure of event times, each reference matched at most once (greedy by distance)."""
    if not estimated and not reference:
        return 1.0
    if not estimated or not reference:
        return 0.0
    pairs = sorted(
        (abs(e - r), i, j)
        for i, e in enumerate(estimated)
        for j, r in enumerate(reference)
        if abs(e - r) <= tolerance
    )
    used_e: set[int] = set()
    used_r: set[int] = set()
    for _, i, j in pairs:
        if i not in used_e and j not in used_r:
            used_e.add(i)
            used_r.add(j)
    hits = len(used_e)
    precision, recall = hits / len(estimated), hits / len(reference)
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def boundary_times(item: SongItem) -> list[float]:
    return [item.downbeats[b] for b in item.boundaries]


def estimated_boundaries(result: Structure) -> list[float]:
    return [s.start for s in result.sections[1:]]


def group_agreement(item: SongItem, result: Structure) -> float:
    """Pairwise agreement of repetition groups: each estimated section takes the label
    of the true section it overlaps most; over all pairs of estimated sections, the share
    where "same group" equals "same label"."""
    labels = []
    for section in result.sections:
        overlaps = [
            min(section.end_bar, s.end_bar) - max(section.start_bar, s.start_bar)
            for s in item.sections
        ]
        labels.append(item.sections[int(np.argmax(overlaps))].label)
    pairs = [(i, j) for i in range(len(labels)) for j in range(i + 1, len(labels))]
    if not pairs:
        return 1.0
    agree = sum(
        (labels[i] == labels[j]) == (result.sections[i].group == result.sections[j].group)
        for i, j in pairs
    )
    return agree / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=8)
    parser.add_argument("--long", action="store_true", help="three-minute songs with a bridge")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    form = LONG_FORM if args.long else SHORT_FORM
    items = song_corpus(args.songs, form)
    minutes = sum(item.audio.duration_seconds for item in items) / 60.0
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"SYNTHETIC corpus: {len(items)} songs, {minutes:.1f} min, form "
        + "/".join(f"{label}{bars}" for label, bars in form)
    )
    downbeat_f, bound_bar_f, bound_half_f, groups = [], [], [], []
    tempo_ok = key_ok = key_near = 0
    analysis_seconds = split_seconds = 0.0
    for item in items:
        began = time.perf_counter()
        feats = features(item.audio)
        analysis = analyze(item.audio, feats)
        result = structure(feats, analysis)
        peaks(item.audio)
        analysis_seconds += time.perf_counter() - began
        began = time.perf_counter()
        split(item.audio)
        split_seconds += time.perf_counter() - began
        bar = 4 * 60.0 / item.bpm
        downbeat_f.append(f_measure(result.downbeats, item.downbeats, 0.07))
        # ±1 bar, plus the 70 ms a beat may be off: a boundary one bar early counts.
        tolerance = bar + 0.07
        bound_bar_f.append(f_measure(estimated_boundaries(result), boundary_times(item), tolerance))
        bound_half_f.append(f_measure(estimated_boundaries(result), boundary_times(item), 0.5))
        groups.append(group_agreement(item, result))
        tempo_ok += analysis.bpm is not None and abs(analysis.bpm / item.bpm - 1) <= 0.04
        if analysis.key_signature is not None:
            found, truth = parse_key(analysis.key_signature), parse_key(item.key)
            key_ok += found == truth
            key_near += found == truth or semitones_between(analysis.key_signature, item.key) == 0
        if args.verbose:
            print(
                f"  {item.bpm:6.1f} BPM {item.key:9} -> {analysis.bpm} {analysis.key_signature}"
                f" downbeat F {downbeat_f[-1]:.2f} (conf {result.downbeat_confidence:.2f})"
                f" boundaries true {list(item.boundaries)}"
                f" found {[s.start_bar for s in result.sections[1:]]}"
                f" groups {[s.group for s in result.sections]}"
            )
    print(f"  {'downbeat F-measure (±70 ms), mean':<52} {statistics.mean(downbeat_f):6.3f}")
    print(
        f"  {'section boundary F-measure (±1 bar), mean':<52} {statistics.mean(bound_bar_f):6.3f}"
    )
    print(
        f"  {'section boundary F-measure (±0.5 s), mean':<52} {statistics.mean(bound_half_f):6.3f}"
    )
    print(f"  {'repetition groups, pairwise agreement':<52} {statistics.mean(groups):6.3f}")
    print(f"  {'tempo within 4 %':<52} {tempo_ok:>3}/{len(items)}")
    print(f"  {'key exactly right':<52} {key_ok:>3}/{len(items)}")
    print(f"  {'key right or its relative major/minor':<52} {key_near:>3}/{len(items)}")
    print(f"  {'analysis (no split), s per minute of audio':<52} {analysis_seconds / minutes:6.3f}")
    print(
        f"  {'harmonic/percussive split, s per minute of audio':<52} {split_seconds / minutes:6.3f}"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
