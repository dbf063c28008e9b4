"""A small synthetic corpus with known answers: drum patterns and chord progressions.

Everything is generated with numpy from a seed, so tests and the benchmark
need no audio files. Items carry noise, velocity and timing jitter and level
changes so the analysis cannot rely on a perfectly clean signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dsp.codec import PROJECT_RATE, Audio

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TempoItem:
    bpm: float
    pattern: str
    audio: Audio


@dataclass(frozen=True)
class KeyItem:
    key: str
    audio: Audio


def _envelope(n: int, decay_seconds: float, rate: int) -> npt.NDArray[np.float64]:
    return np.exp(-np.arange(n) / (decay_seconds * rate))


def _kick(rate: int) -> npt.NDArray[np.float64]:
    n = int(0.25 * rate)
    t = np.arange(n) / rate
    freq = 45 + 110 * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(freq) / rate) * _envelope(n, 0.09, rate)


def _snare(rate: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    n = int(0.2 * rate)
    t = np.arange(n) / rate
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0)  # tilt towards the top end
    body = np.sin(2 * np.pi * 185 * t)
    return (0.5 * noise * _envelope(n, 0.05, rate) + 0.6 * body * _envelope(n, 0.04, rate)) * 0.9


def _hat(rate: int, rng: np.random.Generator, open_: bool = False) -> npt.NDArray[np.float64]:
    n = int((0.25 if open_ else 0.06) * rate)
    noise = np.diff(np.diff(rng.standard_normal(n + 2)))
    return 0.12 * noise * _envelope(n, 0.08 if open_ else 0.015, rate)


# Hits per bar of four beats: (instrument, position in beats, velocity).
_PATTERNS: dict[str, list[tuple[str, float, float]]] = {
    "rock": [("k", 0, 1.0), ("s", 1, 0.9), ("k", 2, 0.9), ("s", 3, 0.9)]
    + [("h", i / 2, 0.6 if i % 2 else 0.8) for i in range(8)],
    "four": [("k", b, 1.0) for b in range(4)]
    + [("s", 1, 0.7), ("s", 3, 0.7)]
    + [("o", b + 0.5, 0.7) for b in range(4)],
    "funk": [("k", 0, 1.0), ("k", 1.75, 0.7), ("k", 2.5, 0.8), ("s", 1, 0.9), ("s", 3, 0.9)]
    + [("h", i / 4, 0.7 if i % 2 == 0 else 0.4) for i in range(16)],
}


def drum_loop(
    bpm: float, pattern: str, seconds: float, seed: int, rate: int = PROJECT_RATE
) -> Audio:
    """A drum pattern at ``bpm`` with jitter, noise and a level change half way."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n + rate, dtype=np.float64)
    sounds = {"k": _kick(rate), "s": _snare(rate, rng), "h": _hat(rate, rng)}
    sounds["o"] = _hat(rate, rng, open_=True)
    beat = 60.0 / bpm
    start = rng.uniform(0.0, 0.5)
    bars = int(seconds / (4 * beat)) + 1
    for bar in range(bars):
        for inst, pos, velocity in _PATTERNS[pattern]:
            when = start + (bar * 4 + pos) * beat + rng.normal(0.0, 0.004)
            i = int(when * rate)
            if i < 0 or i >= n:
                continue
            sound = sounds[inst]
            gain = velocity * rng.uniform(0.8, 1.0)
            out[i : i + len(sound)] += gain * sound[: len(out) - i]
    out = out[:n]
    # A level change (quiet first part), as in a real arrangement, plus a noise floor.
    level = np.where(np.arange(n) < n // 2, 10 ** (-9 / 20), 1.0)
    out = out * level + 10 ** (-50 / 20) * rng.standard_normal(n)
    stereo = np.stack([out, out * 0.9]) * 0.5
    return Audio(stereo.astype(np.float32), rate)


_MAJOR_PROGRESSIONS = [[0, 7, 9, 5], [0, 5, 7, 0], [0, 9, 5, 7], [2, 7, 0, 0]]
_MINOR_PROGRESSIONS = [[0, 8, 3, 10], [0, 5, 7, 0], [0, 5, 10, 3], [0, 10, 8, 7]]


def _triad(root: int, tonic: int, mode: str) -> list[int]:
    """The diatonic triad on ``root`` (semitones above the tonic) of the key."""
    scale = [0, 2, 4, 5, 7, 9, 11] if mode == "major" else [0, 2, 3, 5, 7, 8, 10]
    degree = scale.index(root % 12)
    notes = [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
    if mode == "minor" and root == 7:
        notes[1] = 11  # harmonic minor: the dominant is a major chord
    return [tonic + n for n in notes]


def chord_progression(
    tonic: int, mode: str, seconds: float, seed: int, rate: int = PROJECT_RATE
) -> Audio:
    """A progression in the key with bass, harmonics, noise and a level change."""
    rng = np.random.default_rng(seed)
    progressions = _MAJOR_PROGRESSIONS if mode == "major" else _MINOR_PROGRESSIONS
    # Played twice and resolved to the tonic, as a song section would be.
    progression = progressions[seed % len(progressions)] * 2 + [0]
    n = int(seconds * rate)
    out = np.zeros(n, dtype=np.float64)
    chord_seconds = seconds / len(progression)
    m = int(chord_seconds * rate)
    t = np.arange(m) / rate
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-t / (chord_seconds * 1.5))
    base = 48 + rng.integers(0, 6)  # MIDI note of the lowest octave used
    for index, root in enumerate(progression):
        chord = _triad(root, tonic, mode)
        notes = [(base + (c - base) % 12 + 12, 0.5) for c in chord]  # middle voicing
        notes.append((base + (chord[0] - base) % 12, 0.7))  # bass root
        segment = np.zeros(m)
        for midi, amp in notes:
            freq = 440.0 * 2 ** ((midi - 69) / 12) * (1 + rng.normal(0, 0.001))
            for harmonic in range(1, 7):
                phase = rng.uniform(0, 2 * np.pi)
                segment += amp / harmonic * np.sin(2 * np.pi * freq * harmonic * t + phase)
        out[index * m : index * m + m] += segment * envelope
    level = np.linspace(10 ** (-8 / 20), 1.0, n)
    out = out * level / (np.abs(out).max() + 1e-9) * 0.5
    out += 10 ** (-40 / 20) * rng.standard_normal(n)
    stereo = np.stack([out, out])
    return Audio(stereo.astype(np.float32), rate)


def key_name(tonic: int, mode: str) -> str:
    return f"{NOTE_NAMES[tonic % 12]} {mode}"


def tempo_corpus(count: int = 20, seconds: float = 10.0) -> list[TempoItem]:
    """Drum loops at tempos spread evenly over 70..180 BPM, cycling the patterns."""
    patterns = list(_PATTERNS)
    items = []
    for i in range(count):
        bpm = round(70 + 110 * i / (count - 1), 1)
        pattern = patterns[i % len(patterns)]
        items.append(TempoItem(bpm, pattern, drum_loop(bpm, pattern, seconds, seed=1000 + i)))
    return items


def key_corpus(seconds: float = 8.0) -> list[KeyItem]:
    """One chord progression in each of the 24 major and minor keys."""
    items = []
    for i in range(24):
        tonic, mode = i % 12, ("major" if i < 12 else "minor")
        audio = chord_progression(tonic, mode, seconds, seed=2000 + i)
        items.append(KeyItem(key_name(tonic, mode), audio))
    return items
