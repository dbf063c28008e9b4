"""ITU-R BS.1770-4 integrated loudness and true peak, vectorised.

pyloudnorm is the reference (its K-weighting filters are used as they are),
but its meter loops over gating blocks in Python; previews measure loudness
several times per render, so the gating here works on cumulative sums. The
tests check that both agree.

True peak follows BS.1770 annex 2: the peak of the signal oversampled four
times by a windowed-sinc interpolator (computed in float32 with upfirdn).
"""

from __future__ import annotations

from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Samples = npt.NDArray[np.float32]

OVERSAMPLE: Final = 4
_TAPS_PER_PHASE: Final = 12
_BLOCK_SECONDS: Final = 0.4
_STEP: Final = 0.25  # gating blocks overlap by 75 %
_ABSOLUTE_GATE: Final = -70.0
_RELATIVE_GATE: Final = -10.0
_MIN_SECONDS: Final = _BLOCK_SECONDS


@cache
def _k_weighting(rate: int) -> Floats:
    """K-weighting (pre-filter shelf + RLB high-pass) as second-order sections."""
    # Imported where used, like scipy.signal: pyloudnorm imports it (see dsp.analysis's
    # _chroma_frames for why dsp keeps it out of start-up).
    from pyloudnorm.iirfilter import IIRfilter

    shelf = IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf")
    highpass = IIRfilter(0.0, 0.5, 38.0, rate, "high_pass")
    sections = [np.concatenate([f.b * f.passband_gain, f.a]) for f in (shelf, highpass)]
    return np.array(sections, dtype=np.float64)


def weighted_powers(samples: npt.NDArray[np.floating], rate: int, stride: int = 1) -> Floats:
    """Channel-summed squares of the K-weighted signal, summed in groups of ``stride``.

    Filters in blocks, carrying the filter state, so memory stays small for
    long tracks (the float64 signal never exists whole).
    """
    from scipy.signal import sosfilt  # imported here: see dsp.analysis._chroma_frames

    sections = _k_weighting(rate)
    channels, frames = samples.shape
    state = np.zeros((sections.shape[0], channels, 2))
    groups = -(-frames // stride)
    out = np.empty(groups)
    block = stride * max(1, (1 << 18) // stride)
    for start in range(0, frames, block):
        chunk = samples[:, start : start + block].astype(np.float64)
        weighted, state = sosfilt(sections, chunk, axis=-1, zi=state)
        power = np.einsum("ij,ij->j", weighted, weighted)
        first = start // stride
        out[first : first + -(-power.size // stride)] = np.add.reduceat(
            power, np.arange(0, power.size, stride)
        )
    return out


def block_powers(power: Floats, rate: int, frames: int, stride: int = 1) -> Floats:
    """Mean square of each 400 ms gating block (75 % overlap).

    ``power`` holds per-frame powers summed in groups of ``stride`` frames; a
    stride that divides the 100 ms step keeps the blocks exact.
    """
    count = int(np.round((frames / rate - _BLOCK_SECONDS) / (_BLOCK_SECONDS * _STEP))) + 1
    if count <= 0:
        return np.zeros(0)
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    index = np.arange(count)
    step = _BLOCK_SECONDS * _STEP * rate
    if float(step).is_integer():  # integer bounds: float products can truncate a frame short
        lower = index * int(step)
        upper = np.minimum(lower + 4 * int(step), frames)
    else:
        lower = (_BLOCK_SECONDS * (index * _STEP) * rate).astype(np.int64)
        upper = np.minimum((_BLOCK_SECONDS * (index * _STEP + 1) * rate).astype(np.int64), frames)
    lower, upper = lower // stride, -(-upper // stride)
    powers: Floats = (cumulative[upper] - cumulative[lower]) / (_BLOCK_SECONDS * rate)
    return powers


def block_stride(rate: int) -> int:
    """The largest group of frames, at most 32, that divides the gating step."""
    step = round(_BLOCK_SECONDS * _STEP * rate)
    return max(d for d in range(1, 33) if step % d == 0)


def gated_loudness(powers: Floats) -> float | None:
    """Integrated loudness from block powers with the absolute and relative gates."""
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10.0 * np.log10(powers)
    kept = powers[levels >= _ABSOLUTE_GATE]
    if kept.size == 0:
        return None
    relative = -0.691 + 10.0 * np.log10(kept.mean()) + _RELATIVE_GATE
    kept = powers[(levels > relative) & (levels > _ABSOLUTE_GATE)]
    if kept.size == 0:
        return None
    return float(-0.691 + 10.0 * np.log10(kept.mean()))


def integrated_loudness(samples: npt.NDArray[np.floating], rate: int) -> float | None:
    """Integrated loudness in LUFS; None for silence or under 400 ms of audio."""
    if samples.shape[-1] < _MIN_SECONDS * rate:
        return None
    frames, stride = samples.shape[-1], block_stride(rate)
    powers = block_powers(weighted_powers(samples, rate, stride), rate, frames, stride)
    return gated_loudness(powers)


@cache
def _interpolator() -> Samples:
    half = OVERSAMPLE * _TAPS_PER_PHASE // 2
    k = np.arange(-half, half + 1)
    # A Nyquist filter: taps at multiples of 4 are zero and the centre is 1, so
    # the phase-0 points are the original samples, exactly.
    taps = np.sinc(k / OVERSAMPLE) * np.kaiser(len(k), 8.0)
    interpolator: Samples = taps.astype(np.float32)
    return interpolator


def oversampled(samples: Samples) -> Samples:
    """``samples`` interpolated to 4x the rate, aligned: point 4n is frame n."""
    from scipy.signal import upfirdn  # imported here: see dsp.analysis._chroma_frames

    taps = _interpolator()
    delay = (len(taps) - 1) // 2
    up: Samples = upfirdn(taps, samples.astype(np.float32, copy=False), OVERSAMPLE, axis=-1)
    return up[..., delay : delay + OVERSAMPLE * samples.shape[-1]]


def peak_envelope(samples: Samples, block: int = 1 << 16) -> Samples:
    """Per frame, the largest magnitude over channels of the 4x oversampled points
    from that frame up to the next one (the first of them is the frame itself)."""
    frames = samples.shape[-1]
    envelope = np.empty(frames, dtype=np.float32)
    pad = _TAPS_PER_PHASE
    for start in range(0, frames, block):
        lo, hi = max(0, start - pad), min(frames, start + block + pad)
        stop = min(frames, start + block)
        up = oversampled(samples[:, lo:hi])[:, (start - lo) * OVERSAMPLE : (stop - lo) * OVERSAMPLE]
        np.abs(up, out=up)
        top = np.max(up, axis=0) if up.shape[0] > 2 else np.maximum(up[0], up[-1])
        # Strided maxima over the four points of each frame beat reshape().max().
        np.maximum(top[0::4], top[1::4], out=envelope[start:stop])
        np.maximum(envelope[start:stop], top[2::4], out=envelope[start:stop])
        np.maximum(envelope[start:stop], top[3::4], out=envelope[start:stop])
    return envelope


def true_peak(samples: Samples, block: int = 1 << 18) -> float:
    """Linear true peak (max over channels of the 4x oversampled magnitude)."""
    peak = 0.0
    frames = samples.shape[-1]
    pad = _TAPS_PER_PHASE
    for start in range(0, frames, block):
        lo, hi = max(0, start - pad), min(frames, start + block + pad)
        stop = min(frames, start + block)
        local = peak_envelope(samples[:, lo:hi])[start - lo : stop - lo]
        peak = max(peak, float(local.max(initial=0.0)))
    return peak


def peak_envelope_in(samples: Samples, frames: npt.NDArray[np.bool_], block: int = 4096) -> Samples:
    """:func:`peak_envelope` computed only in blocks holding a flagged frame (zero
    elsewhere): cheap re-checks of the few places near a ceiling."""
    total = samples.shape[-1]
    envelope = np.zeros(total, dtype=np.float32)
    if total == 0:
        return envelope
    flagged = np.flatnonzero(np.add.reduceat(frames, np.arange(0, total, block)) > 0)
    pad = _TAPS_PER_PHASE
    for b in flagged:
        start = int(b) * block
        stop = min(total, start + block)
        lo, hi = max(0, start - pad), min(total, stop + pad)
        local = peak_envelope(samples[:, lo:hi], block=hi - lo)
        envelope[start:stop] = local[start - lo : stop - lo]
    return envelope
