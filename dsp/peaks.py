"""Waveform peaks at a few zoom levels, for clients to draw.

Each level holds the minimum and maximum sample (over both channels) of consecutive
windows of ``SAMPLES_PER_PEAK[k]`` frames, scaled to -127..127 (a full-scale sample is
±127, and a window that holds any sound at all is at least ±1, so quiet passages stay
visible). Levels whose window count is over ``MAX_PEAKS`` are left out, so a long track
keeps only coarser levels; the coarsest level is always kept. A three-minute track at
44.1 kHz gives 7 751 + 1 938 + 485 windows: about 80 kB as JSON.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from dsp.codec import Audio
from dsp.structure import PeakLevel, Peaks

SAMPLES_PER_PEAK: Final = (1024, 4096, 16384)
"""Window lengths in frames: about 23, 93 and 372 ms at 44.1 kHz."""
MAX_PEAKS: Final = 20_000


def peaks(audio: Audio) -> Peaks:
    """Min/max peaks of ``audio`` at the zoom levels that fit (see the module doc)."""
    samples = audio.samples
    frames = samples.shape[1] if samples.ndim == 2 else 0
    levels = []
    for k, size in enumerate(SAMPLES_PER_PEAK):
        count = -(-frames // size)
        if count > MAX_PEAKS and k < len(SAMPLES_PER_PEAK) - 1:
            continue
        levels.append(_level(samples, size, audio.sample_rate))
    return Peaks(duration=round(audio.duration_seconds, 4), levels=tuple(levels))


def _level(samples: np.ndarray, size: int, rate: int) -> PeakLevel:
    frames = samples.shape[1]
    if frames == 0:
        return PeakLevel(seconds_per_peak=size / rate, min=(), max=())
    starts = np.arange(0, frames, size)
    highs = np.maximum.reduceat(samples.max(axis=0), starts)
    lows = np.minimum.reduceat(samples.min(axis=0), starts)
    return PeakLevel(
        seconds_per_peak=size / rate,
        min=tuple(int(v) for v in _scale(lows, np.floor)),
        max=tuple(int(v) for v in _scale(highs, np.ceil)),
    )


def _scale(values: np.ndarray, rounding: np.ufunc) -> npt.NDArray[np.int64]:
    # Round away from zero: a window with any sound shows at least one step.
    scaled: npt.NDArray[np.float64] = rounding(
        np.clip(values.astype(np.float64), -1.0, 1.0) * 127.0
    )
    out: npt.NDArray[np.int64] = np.clip(scaled, -127, 127).astype(np.int64)
    return out


__all__ = ["MAX_PEAKS", "SAMPLES_PER_PEAK", "peaks"]
