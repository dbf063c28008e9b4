"""Songs with a known structure for the generation tests, and how to wait for a generation.

``song()`` synthesises a short track (kick on every beat, hats, a chord whose loudness follows
each section's energy) and returns its WAV bytes with the ``dsp.structure.Structure`` that
describes it exactly: downbeats, sections, energies, key. The upload analysis stores its own
reading of the song (``stored_structure``); ``store_structure`` replaces it, to make an input
that has none or one without a tempo.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec
import numpy as np
from pedalboard.io import AudioFile

from dsp.structure import Section, Structure

RATE = 44100


def song(
    bpm: float = 120.0,
    sections: Sequence[tuple[int, float]] = ((4, 0.4), (4, 1.0), (4, 0.6)),
    *,
    root_hz: float = 220.0,
    key: str | None = "A minor",
    lead_in: float = 0.25,
    tail: float = 0.5,
) -> tuple[bytes, Structure]:
    """A WAV file of ``sections`` ((bars, energy) each) and its exact structure."""
    beat = 60.0 / bpm
    bars = sum(n for n, _ in sections)
    total = lead_in + bars * 4 * beat + tail
    n = int(total * RATE)
    t = np.arange(n) / RATE
    mono = np.zeros(n)
    level = np.zeros(n)
    bar_starts = [lead_in + b * 4 * beat for b in range(bars + 1)]
    out, start = [], 0
    for index, (length, energy) in enumerate(sections):
        lo, hi = bar_starts[start], bar_starts[start + length]
        level[int(lo * RATE) : int(hi * RATE)] = energy
        out.append(Section(f"s{index}", start, start + length, lo, hi, energy, index % 2))
        start += length
    # A minor triad whose loudness follows the sections, and drums on the grid.
    for ratio in (1.0, 1.2, 1.5):
        mono += 0.12 * level * np.sin(2 * np.pi * root_hz * ratio * t)
    kick_t = np.arange(int(0.1 * RATE)) / RATE
    kick = 0.7 * np.sin(2 * np.pi * 55 * kick_t) * np.exp(-kick_t * 35)
    hat = 0.15 * np.random.default_rng(1).standard_normal(int(0.03 * RATE))
    hat *= np.exp(-np.arange(hat.size) / RATE * 120)
    for k in range(bars * 4):
        at = int((lead_in + k * beat) * RATE)
        mono[at : at + kick.size] += kick
        off = int((lead_in + (k + 0.5) * beat) * RATE)
        mono[off : off + hat.size] += hat * level[min(off, n - 1)]
    stereo = np.stack([mono, mono]).astype(np.float32)
    buffer = io.BytesIO()
    with AudioFile(buffer, "w", samplerate=RATE, num_channels=2, format="wav") as f:
        f.write(np.clip(stereo, -1, 1))
    structure = Structure(
        duration=n / RATE,
        bpm=bpm,
        bpm_confidence=0.8,
        key=key,
        key_confidence=0.9 if key else 0.0,
        beats=tuple(lead_in + k * beat for k in range(bars * 4)),
        downbeats=tuple(bar_starts[:-1]),
        downbeat_confidence=0.9,
        sections=tuple(out),
    )
    return buffer.getvalue(), structure


def tempoless(structure: Structure) -> Structure:
    """The same track as an analysis that found no beat would describe it."""
    return msgspec.structs.replace(
        structure, bpm=None, bpm_confidence=0.0, beats=(), downbeats=(), sections=()
    )


async def store_structure(
    db: asyncpg.Connection, upload_id: str | uuid.UUID, structure: Structure | None
) -> None:
    """Replace (or, with None, remove) the structure the analysis stored for an upload."""
    await db.execute(
        "UPDATE uploaded_tracks SET structure = $2::jsonb WHERE id = $1",
        uuid.UUID(str(upload_id)),
        None if structure is None else msgspec.json.encode(structure).decode(),
    )


async def stored_structure(db: asyncpg.Connection, upload_id: str | uuid.UUID) -> Structure:
    """The structure the upload analysis stored."""
    text = await db.fetchval(
        "SELECT structure::text FROM uploaded_tracks WHERE id = $1", uuid.UUID(str(upload_id))
    )
    assert text is not None, "the analysis stored no structure"
    return msgspec.json.decode(text, type=Structure)
