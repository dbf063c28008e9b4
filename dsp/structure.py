"""A track's musical structure: bars, sections, stems and waveform peaks.

This is what the mashup generator (:mod:`dsp.arrange`) reads and what each upload stores
beside its :class:`dsp.analysis.Analysis`. The types are the contract between the analysis
(which fills them from audio) and the arranger (which only reads them), so both can be
tested on their own: the arranger's tests build ``Structure`` values by hand.

Times are seconds from the start of the decoded source; bars are counted from the first
downbeat (bar 0), 4/4 assumed.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Stem = Literal["full", "harmonic", "percussive"]
"""Which part of a source a clip plays: all of it, or one side of the harmonic/percussive
split."""


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A stretch of a track between two novelty boundaries, on whole bars."""

    id: str
    """Label-free and stable for one analysis: ``"s0"``, ``"s1"``, ... in time order."""
    start_bar: int
    end_bar: int
    """Exclusive: the section covers bars ``start_bar .. end_bar - 1``."""
    start: float
    end: float
    energy: float
    """Mean loudness relative to the track's loudest section, 0..1."""
    group: int
    """Repetition group: sections that repeat each other (a chorus) share a group number."""


class Structure(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Bars and sections of one track, plus whether stems exist for it."""

    duration: float
    bpm: float | None
    """None when the tempo is unknown (then there are no bars and no sections)."""
    bpm_confidence: float
    key: str | None
    """``"A minor"``-style, or None when unknown."""
    key_confidence: float
    beats: tuple[float, ...]
    downbeats: tuple[float, ...]
    """The start of every bar, in order; bar n starts at ``downbeats[n]``."""
    downbeat_confidence: float
    """0..1: how clearly the bar phase stands out from the other three."""
    sections: tuple[Section, ...]
    has_stems: bool = False


class PeakLevel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One zoom level of a waveform: ``min``/``max`` per window, scaled to -127..127."""

    seconds_per_peak: float
    min: tuple[int, ...]
    max: tuple[int, ...]


class Peaks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Waveform peaks at a few zoom levels, for clients to draw (small, computed once)."""

    duration: float
    levels: tuple[PeakLevel, ...]
