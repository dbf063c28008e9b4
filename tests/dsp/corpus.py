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


# --------------------------------------------------------------------------- pads and songs


def pad(tonic: int, mode: str, seconds: float, seed: int, rate: int = PROJECT_RATE) -> Audio:
    """A sustained chord with slow attack and release and no onsets: purely harmonic."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for midi in [*_triad(0, tonic + 48, mode), tonic + 36]:
        freq = 440.0 * 2 ** ((midi - 69) / 12)
        for harmonic in range(1, 5):
            out += np.sin(2 * np.pi * freq * harmonic * t + rng.uniform(0, 2 * np.pi)) / harmonic
    ramp = np.minimum(1.0, np.minimum(t, seconds - t) / 0.5)
    out *= 0.15 * ramp / (np.abs(out).max() + 1e-9) * 2
    return Audio(np.stack([out, out * 0.95]).astype(np.float32), rate)


SECTION_KINDS = ("intro", "verse", "chorus", "bridge", "outro")

SHORT_FORM: tuple[tuple[str, int], ...] = (
    ("intro", 4),
    ("verse", 8),
    ("chorus", 8),
    ("verse", 8),
    ("chorus", 8),
    ("outro", 4),
)
"""Intro, verse, chorus, verse, chorus, outro: 40 bars."""

LONG_FORM: tuple[tuple[str, int], ...] = (
    ("intro", 8),
    ("verse", 16),
    ("chorus", 8),
    ("verse", 16),
    ("chorus", 8),
    ("bridge", 8),
    ("chorus", 8),
    ("outro", 8),
)
"""A longer pop form with a bridge: 80 bars (three minutes at about 107 BPM)."""


@dataclass(frozen=True)
class SongSection:
    label: str
    start_bar: int
    end_bar: int


@dataclass(frozen=True)
class SongItem:
    """A synthesised song and its ground truth (times in seconds from the start)."""

    audio: Audio
    bpm: float
    key: str
    beats: tuple[float, ...]
    downbeats: tuple[float, ...]
    sections: tuple[SongSection, ...]

    @property
    def boundaries(self) -> tuple[int, ...]:
        """Bars where a new section starts, after the first one."""
        return tuple(s.start_bar for s in self.sections[1:])

    def groups(self) -> dict[str, list[int]]:
        """Section indices by label: sections with one label repeat each other."""
        out: dict[str, list[int]] = {}
        for i, section in enumerate(self.sections):
            out.setdefault(section.label, []).append(i)
        return out


# Chord roots (scale steps above the tonic) per bar of each kind of section.
_SONG_CHORDS: dict[str, dict[str, list[int]]] = {
    "major": {
        "intro": [0, 0, 5, 5],
        "verse": [0, 9, 5, 7],
        "chorus": [5, 7, 4, 9],
        "bridge": [2, 4, 5, 7],
        "outro": [0, 5, 0, 0],
    },
    "minor": {
        "intro": [0, 0, 8, 8],
        "verse": [0, 8, 3, 10],
        "chorus": [5, 10, 3, 8],
        "bridge": [5, 7, 8, 10],
        "outro": [0, 8, 0, 0],
    },
}
# Lead melody per section kind: (beat in the bar, scale degree) over two bars, or None.
_SONG_LEAD: dict[str, list[tuple[float, int]] | None] = {
    "intro": None,
    "verse": [(0, 2), (1, 4), (2, 2), (3, 1), (4, 0), (5.5, 1), (6, 2)],
    "chorus": [(0, 4), (0.5, 5), (1, 4), (2, 7), (3, 6), (4, 4), (5, 2), (6, 4), (7, 5)],
    "bridge": [(0, 3), (2, 5), (4, 6), (6, 5)],
    "outro": None,
}
# Level and drum density per kind: (gain, drums on, hats per beat, crash on entry).
_SONG_ENERGY: dict[str, tuple[float, bool, int, bool]] = {
    "intro": (0.45, False, 2, False),
    "verse": (0.7, True, 2, True),
    "chorus": (1.0, True, 4, True),
    "bridge": (0.6, True, 2, True),
    "outro": (0.4, False, 2, False),
}


class _NoteCache:
    """Tones by (MIDI note, frames, timbre): a song reuses the same few hundred."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tones: dict[tuple[int, int, str], npt.NDArray[np.float64]] = {}

    def tone(self, midi: int, frames: int, timbre: str) -> npt.NDArray[np.float64]:
        key = (midi, frames, timbre)
        if key not in self.tones:
            t = np.arange(frames) / self.rate
            freq = 440.0 * 2 ** ((midi - 69) / 12)
            partials = {"pad": 6, "bass": 3, "lead": 4}[timbre]
            wave = sum(np.sin(2 * np.pi * freq * h * t) / h**1.2 for h in range(1, partials + 1))
            attack = {"pad": 0.08, "bass": 0.01, "lead": 0.02}[timbre]
            release = min(0.05, frames / self.rate / 4)
            env = np.minimum(1.0, t / attack) * np.minimum(1.0, (frames / self.rate - t) / release)
            if timbre != "pad":
                env = env * np.exp(-t / (0.4 if timbre == "bass" else 0.6))
            self.tones[key] = np.asarray(wave * env, dtype=np.float64)
        return self.tones[key]


def _scale(mode: str) -> list[int]:
    return [0, 2, 4, 5, 7, 9, 11] if mode == "major" else [0, 2, 3, 5, 7, 8, 10]


def song(
    bpm: float,
    tonic: int,
    mode: str,
    form: tuple[tuple[str, int], ...] = SHORT_FORM,
    seed: int = 0,
    rate: int = PROJECT_RATE,
) -> SongItem:
    """Drums, bass, chords and a lead in a known form, tempo and key.

    Bar lines are where a real song marks them: the kick on beat one, chord changes on the
    bar, a crash where a section starts; sections differ in chords, lead, drum density and
    level, and repeated sections repeat them (with fresh jitter and noise).
    """
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    bars = sum(length for _, length in form)
    first = rng.uniform(0.3, 1.0)  # silence before bar 0, as in a real file
    total = first + bars * 4 * beat + 2.0
    n = int(total * rate)
    out = np.zeros(n + rate)
    notes = _NoteCache(rate)
    sounds = {"k": _kick(rate), "s": _snare(rate, rng), "h": _hat(rate, rng)}
    sounds["c"] = _hat(rate, rng, open_=True) * 3.0
    scale = _scale(mode)
    base = 48 + tonic

    def place(sound: npt.NDArray[np.float64], when: float, gain: float) -> None:
        i = int((when + rng.normal(0.0, 0.003)) * rate)
        if 0 <= i < n:
            out[i : i + len(sound)] += gain * sound[: len(out) - i]

    sections = []
    bar = 0
    for label, length in form:
        sections.append(SongSection(label, bar, bar + length))
        gain, drums, hats, crash = _SONG_ENERGY[label]
        chords = _SONG_CHORDS[mode][label]
        lead = _SONG_LEAD[label]
        for b in range(length):
            t0 = first + (bar + b) * 4 * beat
            root = chords[b % len(chords)]
            triad = _triad(root, 0, mode) if root % 12 in scale else [root, root + 4, root + 7]
            chord_frames = int(4 * beat * rate)
            for pitch in triad:
                place(notes.tone(base + 12 + pitch, chord_frames, "pad"), t0, 0.12 * gain)
            for eighth in range(8):  # bass: the root in eighths, accent on beat one
                accent = 1.0 if eighth == 0 else 0.6
                tone = notes.tone(base - 12 + root % 12, int(beat / 2 * rate), "bass")
                place(tone, t0 + eighth * beat / 2, 0.35 * gain * accent)
            if lead is not None:
                for pos, degree in lead:
                    if int(pos // 4) != b % 2:
                        continue
                    midi = base + 24 + scale[degree % 7] + 12 * (degree // 7)
                    tone = notes.tone(midi, int(beat * rate), "lead")
                    place(tone, t0 + (pos % 4) * beat, 0.1 * gain)
            if b == 0 and crash:
                place(sounds["c"], t0, 0.6 * gain)
            if drums:
                place(sounds["k"], t0, 1.0 * gain)
                place(sounds["k"], t0 + 2 * beat, 0.75 * gain)
                place(sounds["s"], t0 + beat, 0.8 * gain)
                place(sounds["s"], t0 + 3 * beat, 0.8 * gain)
            for h in range(4 * hats):
                place(sounds["h"], t0 + h * beat / hats, (0.7 if h % hats == 0 else 0.45) * gain)
        bar += length
    out = out[:n]
    out = out / (np.abs(out).max() + 1e-9) * 0.7 + 10 ** (-60 / 20) * rng.standard_normal(n)
    stereo = np.stack([out, out * 0.92]).astype(np.float32)
    beats = tuple(round(first + k * beat, 5) for k in range(bars * 4))
    return SongItem(
        audio=Audio(stereo, rate),
        bpm=bpm,
        key=key_name(tonic, mode),
        beats=beats,
        downbeats=beats[::4],
        sections=tuple(sections),
    )


def song_corpus(
    count: int = 6, form: tuple[tuple[str, int], ...] = SHORT_FORM, seed: int = 3000
) -> list[SongItem]:
    """Songs at tempos spread over 85..150 BPM, alternating major and minor keys."""
    items = []
    for i in range(count):
        bpm = round(85 + 65 * i / max(1, count - 1), 1)
        tonic, mode = (5 * i + 2) % 12, ("major" if i % 2 == 0 else "minor")
        items.append(song(bpm, tonic, mode, form, seed=seed + i))
    return items
