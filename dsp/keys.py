"""Musical keys as text ("A minor", "F# major") and the shift between two keys."""

from __future__ import annotations

import re
from typing import Final, Literal

Mode = Literal["major", "minor"]

NOTE_NAMES: Final = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

KEY_PATTERN: Final = r"^[A-G][#b]? (major|minor)$"
"""What a key signature looks like: a tonic, a space and major or minor."""

_LETTERS: Final = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_RE: Final = re.compile(KEY_PATTERN)


def key_name(tonic: int, mode: Mode) -> str:
    """Spell a key: ``key_name(9, "minor") == "A minor"``."""
    return f"{NOTE_NAMES[tonic % 12]} {mode}"


def parse_key(text: str) -> tuple[int, Mode]:
    """Parse "A minor" or "Bb major" into (tonic pitch class, mode); ValueError if invalid."""
    if not _KEY_RE.match(text):
        raise ValueError(f"not a key signature: {text!r} (expected e.g. 'A minor')")
    note, mode = text.split(" ")
    tonic = _LETTERS[note[0]] + (1 if note[1:] == "#" else -1 if note[1:] == "b" else 0)
    return tonic % 12, "major" if mode == "major" else "minor"


def semitones_between(source: str, target: str) -> int:
    """The smallest pitch shift (-6..+5) that moves ``source`` onto ``target``.

    A minor key is matched through its relative major (A minor counts as
    C major), the way DJs mix harmonically: the shifted clip then uses the
    same notes as the target key.
    """
    src_tonic, src_mode = parse_key(source)
    dst_tonic, dst_mode = parse_key(target)
    src = src_tonic + (3 if src_mode == "minor" else 0)
    dst = dst_tonic + (3 if dst_mode == "minor" else 0)
    shift = (dst - src) % 12
    return shift - 12 if shift >= 6 else shift
