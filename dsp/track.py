"""Everything the upload pipeline computes for a track, in one pass over the decoded audio:
the :class:`dsp.Analysis`, the :class:`dsp.Structure` (bars, sections), the waveform
:class:`dsp.Peaks` and the harmonic/percussive stems."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

import msgspec

from dsp.analysis import Analysis, analyze, features
from dsp.codec import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, PROJECT_RATE, Audio, decode_file
from dsp.peaks import peaks
from dsp.sections import structure
from dsp.stems import split
from dsp.structure import Peaks, Structure

STEMS_MAX_SECONDS: Final = 15 * 60.0
"""Longer tracks get no stems: two more copies of a long track in memory and in storage
cost more than a clip (at most 10 minutes of source) can use."""


@dataclass(frozen=True, eq=False)
class TrackAnalysis:
    analysis: Analysis
    structure: Structure
    """``has_stems`` is False here: the caller sets it once the stems are stored."""
    peaks: Peaks
    stems: tuple[Audio, Audio] | None
    """(harmonic, percussive), or None when not asked for or the track is too long."""


def analyze_track(audio: Audio, *, stems: bool = True) -> TrackAnalysis:
    """Analyse decoded audio completely (synchronous and CPU-bound)."""
    feats = features(audio)
    analysis = analyze(audio, feats)
    split_stems = None
    if stems and audio.duration_seconds <= STEMS_MAX_SECONDS:
        split_stems = split(audio)
    elif stems:
        note = f"no stems: longer than {STEMS_MAX_SECONDS / 60:.0f} minutes"
        analysis = msgspec.structs.replace(analysis, notes=(*analysis.notes, note))
    return TrackAnalysis(
        analysis=analysis,
        structure=structure(feats, analysis),
        peaks=peaks(audio),
        stems=split_stems,
    )


def analyze_track_path(
    path: str | os.PathLike[str],
    *,
    stems: bool = True,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> TrackAnalysis:
    """Decode and analyse a file completely (synchronous; raises :class:`dsp.AudioError`)."""
    audio = decode_file(
        path, sample_rate=PROJECT_RATE, max_seconds=max_seconds, max_bytes=max_bytes
    )
    return analyze_track(audio, stems=stems)


__all__ = ["STEMS_MAX_SECONDS", "TrackAnalysis", "analyze_track", "analyze_track_path"]
