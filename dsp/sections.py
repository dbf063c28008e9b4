"""Bars and sections: downbeats from the beats, sections from a bar-level self-similarity.

**Downbeats** (4/4 assumed). Of the four ways to group the beats into bars, the one whose
first beats carry the strongest bar-line cues wins: a low-frequency onset (a kick drum, a
bass note) and a harmonic change (chords change on the bar far more often than between
bars: the distance between the chroma of the two beats before and the two after). Each
cue is standardised over the track, so neither dominates by its units. The confidence is
the lead of the winner over the runner-up, in standard deviations, capped at 1.

**Sections** (Foote 2000, on bars). Each bar is described by its chroma (harmony) and its
mean band energies (timbre and level). A self-similarity matrix over bars compares every
bar with every other; a checkerboard kernel four bars wide slides along its diagonal and
scores how different the bars before a point are from the bars after it (novelty).
Boundaries are the novelty peaks that stand out, at least four bars apart. Sections that
repeat each other (a chorus) have bar-by-bar similar content: each section joins the
group of the most similar earlier one when their aligned bars are nearly as alike as a
section is with itself, else it starts a new group.

Everything here works on the shared :class:`dsp.analysis.Features` and the tracked beats:
no second pass over the audio.
"""

from __future__ import annotations

import itertools
from typing import Final

import numpy as np
import numpy.typing as npt

from dsp.analysis import Analysis, Features
from dsp.structure import Section, Structure

Floats = npt.NDArray[np.float64]

BEATS_PER_BAR: Final = 4
KERNEL_BARS: Final = 4
"""Half-width of the novelty kernel: a boundary compares four bars with the next four."""
MIN_SECTION_BARS: Final = 4
PROMINENCE: Final = 0.3
"""How far a novelty peak must rise above its surroundings to be a boundary (in the
units of distance: one standard deviation of every band is 1.0)."""
NOVELTY_HARMONY: Final = 0.25
"""Weight of harmony in the novelty: pooled chroma moves a little at every bar of a
window that straddles a boundary, which blurs the peak; timbre and level mark it."""
GROUP_DISTANCE: Final = 0.35
"""Two sections repeat each other when their pooled descriptions are closer than this
(see distance: a change of one standard deviation in every band is 1.0)."""


def regular_beats(beats: tuple[float, ...]) -> tuple[float, ...]:
    """The beats with any gap the tracker left (a dropped beat) filled by interpolation,
    so counting beats in fours counts bars."""
    if len(beats) < 3:
        return beats
    times = np.asarray(beats)
    period = float(np.median(np.diff(times)))
    out = [float(times[0])]
    for t in times[1:]:
        gap = float(t) - out[-1]
        missing = round(gap / period) - 1
        if missing > 0:
            out.extend(out[-1] + gap * k / (missing + 1) for k in range(1, missing + 1))
        out.append(float(t))
    return tuple(round(t, 4) for t in out)


def _back_to_the_start(beats: tuple[float, ...], start: float, period: float) -> tuple[float, ...]:
    """Continue the beat grid back to where the sound starts.

    The tracker drops leading beats that land on no onset, so an intro without drums
    (pads, a vocal) would have no bars; the grid of a steady tempo continues through it,
    and the arranger can then use the intro's bars too. (Not forwards: a ringing last
    chord is no bar.)
    """
    if not beats:
        return beats
    earlier = []
    t = beats[0] - period
    while t >= start - 0.05 * period:
        earlier.append(round(t, 4))
        t -= period
    return (*reversed(earlier), *beats)


def _frame(times: Floats, feats: Features, fps: float) -> npt.NDArray[np.intp]:
    return np.clip(np.round((times - feats.start) * fps).astype(np.intp), 0, None)


def _zscore(values: Floats) -> Floats:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-12 else np.zeros_like(values)


def _segment_sums(values: Floats, edges: npt.NDArray[np.intp]) -> Floats:
    """Sum of ``values`` rows between consecutive ``edges`` (frame indices)."""
    edges = np.clip(edges, 0, len(values))
    cumulative = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    return np.asarray(cumulative[edges[1:]] - cumulative[edges[:-1]], dtype=np.float64)


def bar_phase(feats: Features, beats: tuple[float, ...]) -> tuple[int, float]:
    """Which beat (0..3) starts the first full bar, and how sure that is (0..1)."""
    if len(beats) < 2 * BEATS_PER_BAR:
        return 0, 0.0
    times = np.asarray(beats)
    # Low onsets: the strongest low-band onset within ±2 frames (±23 ms) of each beat.
    at = _frame(times, feats, feats.fps)
    low = np.pad(feats.low, 2)
    kick = np.max([low[np.clip(at + k, 0, len(low) - 1)] for k in range(5)], axis=0)
    # Harmonic change: chroma of the two beats after a beat against the two before.
    edges = _frame(np.append(times, times[-1] + np.median(np.diff(times))), feats, feats.chroma_fps)
    per_beat = _segment_sums(feats.chroma, edges)
    change = np.zeros(len(times))
    for i in range(2, len(times) - 1):
        before = per_beat[i - 2 : i].sum(axis=0)
        after = per_beat[i : i + 2].sum(axis=0)
        denominator = np.linalg.norm(before) * np.linalg.norm(after)
        if denominator > 0:
            change[i] = 1.0 - float(before @ after) / denominator
    cue = _zscore(kick) + _zscore(change)
    scores = np.array([cue[p::BEATS_PER_BAR].mean() for p in range(BEATS_PER_BAR)])
    order = np.argsort(scores)[::-1]
    lead = float(scores[order[0]] - scores[order[1]])
    return int(order[0]), round(float(np.clip(lead, 0.0, 1.0)), 3)


def bar_features(feats: Features, downbeats: Floats, end: float) -> Floats:
    """One row per bar: its chroma (unit sum: harmony, not level) and its mean band
    energies, standardised per band over the track (timbre and level)."""
    bounds = np.append(downbeats, end)
    chroma = _segment_sums(feats.chroma, _frame(bounds, feats, feats.chroma_fps))
    chroma = chroma / np.maximum(chroma.sum(axis=1, keepdims=True), 1e-12)
    frames = _frame(bounds, feats, feats.fps)
    counts = np.maximum(np.diff(np.clip(frames, 0, len(feats.bands))), 1)[:, np.newaxis]
    timbre = _segment_sums(feats.bands, frames) / counts
    timbre = (timbre - timbre.mean(axis=0)) / (timbre.std(axis=0) + 1e-9)
    return np.hstack([chroma, timbre])


def distance(a: Floats, b: Floats, harmony: float = 1.0) -> float:
    """How different two (pooled) bar descriptions are: the RMS difference of their
    standardised band energies plus ``harmony`` times the cosine distance of their
    chroma."""
    ca, cb = a[:12], b[:12]
    cosine = float(ca @ cb) / max(float(np.linalg.norm(ca) * np.linalg.norm(cb)), 1e-12)
    timbre = float(np.sqrt(np.mean((a[12:] - b[12:]) ** 2)))
    return harmony * (1.0 - cosine) + timbre


def novelty(bars: Floats, half: int = KERNEL_BARS) -> Floats:
    """Novelty at every bar line: the distance between the mean of the ``half`` bars
    before it and the mean of the ``half`` bars after it.

    Pooling before comparing matters: within a section the chords change every bar, but
    four bars of a four-chord loop always pool to the same thing, wherever they start.
    """
    n = len(bars)
    out = np.zeros(n)
    for b in range(2, n - 1):
        before = bars[max(0, b - half) : b].mean(axis=0)
        after = bars[b : min(n, b + half)].mean(axis=0)
        out[b] = distance(before, after, NOVELTY_HARMONY)
    return out


def boundaries(curve: Floats, min_bars: int = MIN_SECTION_BARS) -> list[int]:
    """Novelty peaks that stand out from their surroundings, at least ``min_bars`` apart
    (strongest first).

    A peak counts when it rises :data:`PROMINENCE` above the lowest novelty within
    ``min_bars`` on either side (inside a section the pooled windows agree, so the curve
    drops close to zero there) and reaches a tenth of the highest peak. Prominence rather
    than one global threshold: an intro or outro that changes everything must not hide
    the quieter verse/chorus changes.
    """
    n = len(curve)
    if n < 2 * min_bars:
        return []
    top = float(curve.max())
    candidates = []
    for b in range(min_bars, n - min_bars + 1):
        if curve[b] < curve[b - 1 : b + 2].max() or curve[b] < 0.1 * top:
            continue
        floor = float(curve[max(0, b - min_bars) : b + min_bars + 1].min())
        if curve[b] - floor >= PROMINENCE:
            candidates.append(b)
    chosen: list[int] = []
    for b in sorted(candidates, key=lambda c: -curve[c]):
        if all(abs(b - c) >= min_bars for c in chosen):
            chosen.append(b)
    return sorted(chosen)


def _group(bars: Floats, spans: list[tuple[int, int]]) -> list[int]:
    """Repetition groups: a section joins the group of the most alike earlier section
    when their pooled descriptions are closer than GROUP_DISTANCE; otherwise it starts a
    new group."""
    pooled = [bars[a:b].mean(axis=0) for a, b in spans]
    groups: list[int] = []
    for i in range(len(spans)):
        nearest = min(range(i), key=lambda j: distance(pooled[i], pooled[j]), default=None)
        if nearest is not None and distance(pooled[i], pooled[nearest]) < GROUP_DISTANCE:
            groups.append(groups[nearest])
        else:
            groups.append(max(groups, default=-1) + 1)
    return groups


def _energies(feats: Features, starts: list[float], ends: list[float]) -> list[float]:
    rate = len(feats.mono) / feats.active if feats.active > 0 else 1.0
    levels = []
    for start, end in zip(starts, ends, strict=True):
        lo = max(0, round((start - feats.start) * rate))
        hi = min(len(feats.mono), max(lo + 1, round((end - feats.start) * rate)))
        piece = feats.mono[lo:hi]
        levels.append(float(np.sqrt(np.mean(piece**2))) if len(piece) else 0.0)
    loudest = max(levels, default=0.0)
    return [round(level / loudest, 3) if loudest > 0 else 0.0 for level in levels]


def structure(feats: Features, analysis: Analysis) -> Structure:
    """Bars and sections of an analysed track (no bars without a tempo)."""
    empty = Structure(
        duration=analysis.duration_seconds,
        bpm=analysis.bpm,
        bpm_confidence=analysis.bpm_confidence,
        key=analysis.key_signature,
        key_confidence=analysis.key_confidence,
        beats=analysis.beats,
        downbeats=(),
        downbeat_confidence=0.0,
        sections=(),
    )
    if analysis.bpm is None or len(analysis.beats) < 2 * BEATS_PER_BAR:
        return empty
    beats = _back_to_the_start(regular_beats(analysis.beats), feats.start, 60.0 / analysis.bpm)
    phase, confidence = bar_phase(feats, beats)
    downbeats = beats[phase::BEATS_PER_BAR]
    bar_seconds = BEATS_PER_BAR * 60.0 / analysis.bpm
    end = min(analysis.duration_seconds, downbeats[-1] + bar_seconds)
    bars = bar_features(feats, np.asarray(downbeats), end)
    cuts = [0, *boundaries(novelty(bars)), len(downbeats)]
    spans = list(itertools.pairwise(cuts))
    groups = _group(bars, spans)
    starts = [downbeats[a] for a, _ in spans]
    ends = [downbeats[b] if b < len(downbeats) else end for _, b in spans]
    energies = _energies(feats, starts, ends)
    sections = tuple(
        Section(
            id=f"s{i}",
            start_bar=a,
            end_bar=b,
            start=round(starts[i], 4),
            end=round(ends[i], 4),
            energy=energies[i],
            group=groups[i],
        )
        for i, (a, b) in enumerate(spans)
    )
    return Structure(
        duration=empty.duration,
        bpm=empty.bpm,
        bpm_confidence=empty.bpm_confidence,
        key=empty.key,
        key_confidence=empty.key_confidence,
        beats=beats,
        downbeats=downbeats,
        downbeat_confidence=confidence,
        sections=sections,
    )


__all__ = [
    "BEATS_PER_BAR",
    "bar_features",
    "bar_phase",
    "boundaries",
    "distance",
    "novelty",
    "regular_beats",
    "structure",
]
