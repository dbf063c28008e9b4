"""Track analysis: duration, tempo and beats, key, loudness and true peak.

Tempo follows the classic pipeline: a spectral-flux onset envelope, a tempo
salience that multiplies the envelope's autocorrelation (peaks at the beat
period and its multiples) by its Fourier spectrum (peaks at the beat rate and
its multiples) so only the true beat survives both (Peeters 2007), then
dynamic-programming beat tracking (Ellis 2007). The reported BPM is fitted to
the tracked beats, so a beat grid built from it stays aligned over minutes.

Key: a chromagram matched against Krumhansl-Kessler major and minor profiles;
below ``KEY_THRESHOLD`` the key is reported as unknown.

Loudness and true peak: see :mod:`dsp.loudness` (ITU-R BS.1770-4).

Silence before and after the music is trimmed first (40 dB under the loudest
moment), so padding a file changes no answer: only the times move with it.
Whatever stays unknown says why in ``Analysis.notes``.

:func:`features` computes what tempo, key and :mod:`dsp.sections` share (one
pass over the audio): band energies, onset envelopes and per-frame chroma.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from math import gcd
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from dsp import loudness
from dsp.codec import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, PROJECT_RATE, Audio, decode_file
from dsp.keys import NOTE_NAMES, Mode, key_name

Floats = npt.NDArray[np.float64]

KEY_THRESHOLD: Final = 0.75
"""Correlation with the best key profile below which the key is reported unknown."""

TEMPO_THRESHOLD: Final = 0.1
"""Tempo confidence below which no tempo (and no beats) is reported."""

TEMPO_MIN_BPM: Final = 60.0
TEMPO_MAX_BPM: Final = 200.0
MIN_TEMPO_SECONDS: Final = 4.0
"""Less sound than this (after trimming silence) has no tempo: too few beats to tell
a tempo from its 3:4 or 2:3 neighbours."""
MIN_BEATS: Final = 8

TRIM_DB: Final = 40.0
"""Leading and trailing audio this far under the loudest 46 ms is silence."""

_ANALYSIS_RATE: Final = 22050
_HOP: Final = 256
_FFT: Final = 1024
_BANDS: Final = 36
_LOW_HZ: Final = 150.0


class Analysis(msgspec.Struct, frozen=True):
    """The result of analysing a track; every field is JSON-safe (no NaN or inf)."""

    duration_seconds: float
    bpm: float | None
    bpm_confidence: float
    beats: tuple[float, ...]
    key_signature: str | None
    key_confidence: float
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    notes: tuple[str, ...] = ()
    """Why something is unknown (or shaky), in words: "no tempo: only 2.8 s of sound"."""


class Tempo(msgspec.Struct, frozen=True):
    bpm: float | None
    confidence: float
    beats: tuple[float, ...]
    note: str | None = None


class Key(msgspec.Struct, frozen=True):
    key_signature: str | None
    confidence: float
    best_guess: str
    note: str | None = None


@dataclass(frozen=True, eq=False)
class Features:
    """What the analyses share, computed once. Frame times count from ``start``."""

    duration: float
    start: float
    """Seconds of leading silence trimmed."""
    active: float
    """Seconds of sound between the trimmed silences."""
    mono: Floats
    """The trimmed sound, mono at ``ANALYSIS_RATE``."""
    fps: float
    bands: Floats
    """(frames, 36) log-compressed energies in log-spaced bands, 30 Hz..10 kHz."""
    envelope: Floats
    """Onset strength per frame (spectral flux, detrended)."""
    low: Floats
    """Onset strength under 150 Hz (kick drums, bass notes) per frame."""
    chroma: Floats
    """(frames, 12) pitch-class energy per chroma frame, C first."""
    chroma_fps: float


ANALYSIS_RATE: Final = _ANALYSIS_RATE


# --------------------------------------------------------------------------- helpers


def _mono(audio: Audio, rate: int) -> Floats:
    # float32 until the rate is down: a long track's float64 copy would be large.
    mono = audio.samples.mean(axis=0, dtype=np.float32)
    if audio.sample_rate != rate:
        from scipy.signal import resample_poly  # imported here: see _chroma_frames

        g = gcd(audio.sample_rate, rate)
        mono = resample_poly(mono, rate // g, audio.sample_rate // g)
    return np.asarray(mono, dtype=np.float64)


def _frames(signal: Floats, size: int, hop: int) -> Floats:
    """Centred frames of ``signal`` as a (count, size) strided view."""
    padded = np.pad(signal, (size // 2, size // 2))
    count = 1 + (len(padded) - size) // hop
    if count <= 0:
        return np.zeros((0, size))
    return np.lib.stride_tricks.as_strided(
        padded, shape=(count, size), strides=(padded.strides[0] * hop, padded.strides[0])
    )


def _band_matrix(size: int, rate: int, bands: int, low: float, high: float) -> Floats:
    """Average FFT bins into log-spaced bands so every octave weighs the same."""
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    edges = np.geomspace(low, high, bands + 1)
    matrix = np.zeros((len(freqs), bands))
    for b in range(bands):
        mask = (freqs >= edges[b]) & (freqs < edges[b + 1])
        if not mask.any():
            mask = np.abs(freqs - np.sqrt(edges[b] * edges[b + 1])) == np.min(
                np.abs(freqs - np.sqrt(edges[b] * edges[b + 1]))
            )
        matrix[mask, b] = 1.0 / mask.sum()
    return matrix


def band_energies(mono: Floats, rate: int = _ANALYSIS_RATE) -> Floats:
    """Log-compressed energies in 36 log-spaced bands, one row per hop."""
    frames = _frames(mono, _FFT, _HOP)
    out = np.zeros((len(frames), _BANDS))
    if len(frames) == 0:
        return out
    window = np.hanning(_FFT)
    bands = _band_matrix(_FFT, rate, _BANDS, 30.0, 10000.0)
    block = 2048
    for start in range(0, len(frames), block):
        spectrum = np.abs(np.fft.rfft(frames[start : start + block] * window, axis=1))
        out[start : start + len(spectrum)] = np.log1p(1000.0 * (spectrum @ bands))
    return out


def _flux(energy: Floats) -> Floats:
    """Spectral flux of band energies, with the slowly varying part removed so level
    changes do not read as onsets."""
    if len(energy) < 2:
        return np.zeros(len(energy))
    out = np.maximum(np.diff(energy, axis=0, prepend=energy[:1]), 0.0).sum(axis=1)
    out[0] = 0.0
    trend = np.convolve(out, np.ones(43) / 43, mode="same")
    return np.asarray(np.maximum(out - trend, 0.0), dtype=np.float64)


def onset_envelope(mono: Floats, rate: int = _ANALYSIS_RATE) -> Floats:
    """Spectral flux of log-compressed band energies, one value per hop."""
    return _flux(band_energies(mono, rate))


def _low_bands(rate: int = _ANALYSIS_RATE) -> int:
    edges = np.geomspace(30.0, 10000.0, _BANDS + 1)
    return max(1, int(np.searchsorted(edges, _LOW_HZ)))


def active_span(mono: Floats, rate: int) -> tuple[int, int]:
    """First and last (exclusive) sample of sound: leading and trailing silence cut.

    Silence is anything :data:`TRIM_DB` under the loudest 46 ms block (and anything
    under -80 dBFS), so a noise floor or dither counts as silence too.
    """
    block = 1024
    count = len(mono) // block
    if count == 0:
        return (0, len(mono)) if np.any(np.abs(mono) > 1e-4) else (0, 0)
    rms = np.sqrt(np.mean(mono[: count * block].reshape(count, block) ** 2, axis=1))
    threshold = max(float(rms.max()) * 10 ** (-TRIM_DB / 20), 1e-4)
    loud = np.flatnonzero(rms > threshold)
    if len(loud) == 0:
        return 0, 0
    # To the sample, so that padding moves the analysed audio by exactly its length.
    lo = max(0, int(loud[0]) - 1) * block
    hi = len(mono) if loud[-1] >= count - 2 else (int(loud[-1]) + 2) * block
    above = np.flatnonzero(np.abs(mono[lo:hi]) > threshold)
    if len(above) == 0:
        return lo, hi
    return lo + int(above[0]), lo + int(above[-1]) + 1


def features(audio: Audio) -> Features:
    """Trim the silences and compute the shared features (see :class:`Features`)."""
    mono = _mono(audio, _ANALYSIS_RATE)
    first, last = active_span(mono, _ANALYSIS_RATE)
    mono = mono[first:last]
    bands = band_energies(mono)
    low = _low_bands()
    return Features(
        duration=audio.duration_seconds,
        start=first / _ANALYSIS_RATE,
        active=len(mono) / _ANALYSIS_RATE,
        mono=mono,
        fps=_ANALYSIS_RATE / _HOP,
        bands=bands,
        envelope=_flux(bands),
        low=_flux(bands[:, :low]),
        chroma=_chroma_frames(mono),
        chroma_fps=_CHROMA_RATE / _CHROMA_HOP,
    )


# --------------------------------------------------------------------------- tempo


def _tempo_salience(envelope: Floats, fps: float, bpms: Floats) -> tuple[Floats, Floats]:
    """Return (salience per candidate BPM, normalised autocorrelation by lag)."""
    n = len(envelope)
    centred = envelope - envelope.mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(centred, size)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, size)[:n]
    acf = acf / acf[0] if acf[0] > 0 else np.zeros(n)
    lags = 60.0 * fps / bpms
    acf_at = np.interp(lags, np.arange(n), np.maximum(acf, 0.0))
    # Fine frequency grid: zero-pad generously, the envelope is short.
    fine = 1 << max(16, int(np.ceil(np.log2(4 * n))))
    dft = np.abs(np.fft.rfft(centred * np.hanning(n), fine))
    bins = bpms / 60.0 * fine / fps
    dft_at = np.interp(bins, np.arange(len(dft)), dft)
    dft_at = dft_at / dft_at.max() if dft_at.max() > 0 else dft_at
    # A weak preference for moderate tempi settles what the product leaves tied.
    prior = np.exp(-0.5 * (np.log2(bpms / 120.0) / 1.5) ** 2)
    return acf_at * dft_at * prior, acf


FAST_BPM: Final = 150.0
HALF_SALIENCE: Final = 0.3
"""A tempo over FAST_BPM whose half is this salient (relative) is read at half speed."""


def _metrical_level(bpms: Floats, salience: Floats) -> float:
    """The most salient tempo, or its half when that is fast and the half is strong too.

    Busy eighth notes (hi-hats, a bass in eighths) make a slow song's eighth-note pulse
    the most periodic one, so it reads at twice its tempo; its real beat (kick and snare)
    then still stands out at half that rate. On the drum-loop corpus a true fast tempo
    has its half at most 0.16 as salient; slow songs read double had 0.36 and 0.53.
    """
    best = int(np.argmax(salience))
    bpm = float(bpms[best])
    if bpm > FAST_BPM and bpm / 2 >= bpms[0]:
        half = float(np.interp(bpm / 2, bpms, salience))
        if half >= HALF_SALIENCE * float(salience[best]):
            lo, hi = np.searchsorted(bpms, [bpm / 2 * 0.96, bpm / 2 * 1.04])
            return float(bpms[lo + int(np.argmax(salience[lo:hi]))])
    return bpm


def _track_beats(envelope: Floats, period: float, tightness: float = 100.0) -> list[int]:
    """Dynamic-programming beat tracker: onsets that are strong and evenly spaced."""
    n = len(envelope)
    norm = envelope / (envelope.std() + 1e-12)
    # Local score: the envelope smoothed by a window about a beat wide.
    width = max(1, int(period / 4))
    kernel = np.exp(-0.5 * (np.arange(-width, width + 1) / (width / 2)) ** 2)
    local = np.convolve(norm, kernel, mode="same")
    score = local.copy()
    back = np.full(n, -1)
    offsets = np.arange(-round(2 * period), -round(period / 2) + 1)
    penalty = -tightness * np.log(-offsets / period) ** 2
    for t in range(n):
        candidates = t + offsets
        valid = candidates >= 0
        if not valid.any():
            continue
        values = penalty[valid] + score[candidates[valid]]
        best = int(np.argmax(values))
        score[t] = local[t] + values[best]
        back[t] = candidates[valid][best]
    # Start from the best score within the last beat period.
    tail = max(0, n - round(period))
    t = tail + int(np.argmax(score[tail:]))
    beats = []
    while t >= 0:
        beats.append(t)
        t = int(back[t])
    beats.reverse()
    # Drop leading and trailing beats that land on no onset at all.
    threshold = 0.5 * np.median(local[beats]) if beats else 0.0
    while beats and local[beats[0]] < threshold:
        beats.pop(0)
    while beats and local[beats[-1]] < threshold:
        beats.pop()
    return beats


def estimate_tempo(audio: Audio | Features) -> Tempo:
    """Tempo in BPM with a 0..1 confidence and the beat times in seconds."""
    feats = audio if isinstance(audio, Features) else features(audio)
    fps = feats.fps
    envelope = feats.envelope
    if feats.active == 0 or envelope.max(initial=0.0) <= 0:
        return Tempo(None, 0.0, (), "no tempo: no onsets")
    if feats.active < MIN_TEMPO_SECONDS:
        return Tempo(
            None,
            0.0,
            (),
            f"no tempo: only {feats.active:.1f} s of sound "
            f"(at least {MIN_TEMPO_SECONDS:.0f} s are needed to tell a tempo from 3:4 of it)",
        )
    bpms = np.geomspace(TEMPO_MIN_BPM, TEMPO_MAX_BPM, 600)
    salience, acf = _tempo_salience(envelope, fps, bpms)
    if salience.max() <= 0:
        return Tempo(None, 0.0, (), "no tempo: no periodic onsets")
    bpm = _metrical_level(bpms, salience)
    period = 60.0 * fps / bpm
    frames = _track_beats(envelope, period)
    if len(frames) < MIN_BEATS:
        return Tempo(
            None,
            0.0,
            (),
            f"no tempo: only {len(frames)} beats found (at least {MIN_BEATS} are needed)",
        )
    # Refine each beat to the onset peak nearby (sub-frame, parabolic).
    times = np.array([_refine(envelope, f) for f in frames]) / fps
    # Fit the tempo to the beats: robust to drift in the middle of the track.
    index = np.arange(len(times))
    slope = float(np.polyfit(index, times, 1)[0])
    fitted = 60.0 / slope if slope > 0 else bpm
    lag = 60.0 * fps / fitted
    peak = float(np.interp(lag, np.arange(len(acf)), acf))
    lo, hi = int(60.0 * fps / TEMPO_MAX_BPM), int(60.0 * fps / TEMPO_MIN_BPM)
    floor = float(np.median(acf[lo : min(hi, len(acf))])) if hi < len(acf) else 0.0
    confidence = float(np.clip((peak - floor) / (1.0 - floor + 1e-12), 0.0, 1.0))
    if confidence < TEMPO_THRESHOLD:
        return Tempo(
            None,
            round(confidence, 3),
            (),
            f"no tempo: the onsets are not periodic enough (confidence {confidence:.2f})",
        )
    beats = tuple(round(float(t) + feats.start, 4) for t in times)
    return Tempo(round(float(fitted), 3), round(confidence, 3), beats)


def _refine(envelope: Floats, frame: int) -> float:
    lo, hi = max(0, frame - 2), min(len(envelope), frame + 3)
    peak = lo + int(np.argmax(envelope[lo:hi]))
    if 0 < peak < len(envelope) - 1:
        a, b, c = envelope[peak - 1], envelope[peak], envelope[peak + 1]
        denom = a - 2 * b + c
        if denom < 0:
            return float(peak + 0.5 * (a - c) / denom)
    return float(peak)


# --------------------------------------------------------------------------- key

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
_MAJOR: Final = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR: Final = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

_CHROMA_RATE: Final = 11025
_CHROMA_FFT: Final = 4096


_CHROMA_HOP: Final = 2048
_KEY_FRAME_DB: Final = 40.0
"""Chroma frames this far under the loudest one are left out of the key profile."""


def _chroma_frames(mono: Floats) -> Floats:
    """Pitch-class energy of each chroma frame (186 ms hops), from the mono signal at
    ``ANALYSIS_RATE``: (frames, 12), C first."""
    # dsp imports scipy.signal and scipy.ndimage where they are used: together they take
    # over a second to import (scipy.signal pulls in scipy.stats), and every server process
    # imports this module at start-up while only the workers that process audio need them.
    from scipy.ndimage import maximum_filter1d
    from scipy.signal import resample_poly

    signal = resample_poly(mono, 1, _ANALYSIS_RATE // _CHROMA_RATE) if len(mono) else mono
    frames = _frames(signal, _CHROMA_FFT, _CHROMA_HOP)
    freqs = np.fft.rfftfreq(_CHROMA_FFT, 1.0 / _CHROMA_RATE)
    usable = (freqs >= 60.0) & (freqs <= 2000.0)
    pitch = 12 * np.log2(freqs[usable] / 440.0) + 69
    classes = np.round(pitch).astype(int) % 12
    # Bins far from any semitone centre are ambiguous; weigh them down.
    weights = np.cos(np.pi * (pitch - np.round(pitch))) ** 2
    mapping = np.zeros((int(usable.sum()), 12))
    mapping[np.arange(len(classes)), classes] = weights
    out = np.zeros((len(frames), 12))
    window = np.hanning(_CHROMA_FFT)
    for start in range(0, len(frames), 512):
        spectrum = np.abs(np.fft.rfft(frames[start : start + 512] * window, axis=1))[:, usable]
        # Keep spectral peaks only: harmonics' skirts smear into neighbouring semitones.
        peaks = spectrum * (spectrum >= maximum_filter1d(spectrum, 3, axis=1))
        out[start : start + len(spectrum)] = (peaks * peaks) @ mapping
    return out


def chroma(audio: Audio | Features) -> Floats:
    """A 12-bin pitch-class profile of the whole track (C first), summing to 1.

    Every frame counts the same (normalised), except frames far quieter than the
    loudest, which are left out: a fade or a noise floor must not pull the key.
    """
    frames = (audio if isinstance(audio, Features) else features(audio)).chroma
    norms = frames.sum(axis=1)
    if len(frames) == 0 or norms.max() <= 0:
        return np.zeros(12)
    loud = norms >= norms.max() * 10 ** (-_KEY_FRAME_DB / 10)
    total = (frames[loud] / norms[loud, np.newaxis]).sum(axis=0)
    return np.asarray(total / total.sum(), dtype=np.float64)


KEY_MARGIN: Final = 0.02
"""A best key that beats a different key by less than this is reported with the
confidence scaled down (relative major/minor excepted: they share every note)."""


def estimate_key(audio: Audio | Features) -> Key:
    """Key and mode by profile correlation; unknown below :data:`KEY_THRESHOLD`."""
    profile = chroma(audio)
    if profile.sum() <= 0 or profile.std() == 0:
        return Key(None, 0.0, "C major", "no key: no pitched sound")
    scores: list[tuple[float, int, Mode]] = []
    modes: tuple[tuple[Mode, Floats], ...] = (("major", _MAJOR), ("minor", _MINOR))
    for mode, template in modes:
        for tonic in range(12):
            r = float(np.corrcoef(profile, np.roll(template, tonic))[0, 1])
            scores.append((r, tonic, mode))
    scores.sort(reverse=True)
    r, tonic, mode = scores[0]
    relative = (tonic + (3 if mode == "minor" else 9)) % 12
    rival = next((x for x in scores[1:] if not (x[1] == relative and x[2] != mode)), scores[1])
    confidence = float(np.clip(r, 0.0, 1.0))
    # Two different keys fitting about equally well (a parallel major/minor, a fifth
    # apart): a small change of the input could flip the answer, so say so.
    margin = r - rival[0]
    if margin < KEY_MARGIN:
        confidence *= 0.5 + 0.5 * max(margin, 0.0) / KEY_MARGIN
    confidence = round(confidence, 3)
    guess = key_name(tonic, mode)
    if confidence >= KEY_THRESHOLD:
        return Key(guess, confidence, guess)
    note = f"no key: the best fit, {guess}, is weak (confidence {confidence:.2f})"
    if margin < KEY_MARGIN:
        note = f"no key: {guess} and {key_name(rival[1], rival[2])} fit about equally well"
    return Key(None, confidence, guess, note)


# --------------------------------------------------------------------------- loudness


def integrated_loudness(audio: Audio) -> float | None:
    """BS.1770 integrated loudness in LUFS; None for silence or under 400 ms."""
    return loudness.integrated_loudness(audio.samples, audio.sample_rate)


def true_peak_dbtp(audio: Audio) -> float | None:
    """True peak in dBTP; None for digital silence."""
    peak = loudness.true_peak(audio.samples)
    return round(20 * float(np.log10(peak)), 3) if peak > 0 else None


# --------------------------------------------------------------------------- entry points


def analyze(audio: Audio, feats: Features | None = None) -> Analysis:
    """Analyse decoded audio (synchronous and CPU-bound: run it off the event loop)."""
    feats = features(audio) if feats is None else feats
    tempo = estimate_tempo(feats)
    key = estimate_key(feats)
    loudness = integrated_loudness(audio)
    return Analysis(
        duration_seconds=round(audio.duration_seconds, 4),
        bpm=tempo.bpm,
        bpm_confidence=tempo.confidence,
        beats=tempo.beats,
        key_signature=key.key_signature,
        key_confidence=key.confidence,
        loudness_lufs=None if loudness is None else round(loudness, 2),
        true_peak_dbtp=true_peak_dbtp(audio),
        notes=tuple(note for note in (tempo.note, key.note) if note is not None),
    )


def analyze_path(
    path: str | os.PathLike[str],
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> Analysis:
    """Decode and analyse a file (synchronous)."""
    audio = decode_file(
        path, sample_rate=PROJECT_RATE, max_seconds=max_seconds, max_bytes=max_bytes
    )
    return analyze(audio)


async def analyze_file(
    path: str | os.PathLike[str],
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> Analysis:
    """Decode and analyse a file in a worker thread; raises :class:`dsp.AudioError`.

    This is the upload pipeline's hook. Decoding and the numeric work release
    the GIL for most of their time, so the event loop stays responsive.
    """
    return await asyncio.to_thread(analyze_path, path, max_seconds=max_seconds, max_bytes=max_bytes)


__all__ = [
    "ANALYSIS_RATE",
    "KEY_THRESHOLD",
    "NOTE_NAMES",
    "TEMPO_THRESHOLD",
    "Analysis",
    "Features",
    "Key",
    "Tempo",
    "analyze",
    "analyze_file",
    "analyze_path",
    "chroma",
    "estimate_key",
    "estimate_tempo",
    "features",
    "integrated_loudness",
    "true_peak_dbtp",
]
