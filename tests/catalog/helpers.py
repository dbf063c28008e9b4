"""Helpers for the music-area tests: users with roles, tracks, real audio files."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pedalboard.io import AudioFile

from tests.support import ServerProcess, TestUser, make_user

__all__ = ["TestUser", "audio_bytes", "make_track", "make_user", "track_body"]


def track_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Summer Vibes",
        "artist": "John Producer",
        "duration": 180,
        "audio_filename": f"summer-{uuid.uuid4().hex}.mp3",
        "tempo": 120,
        "musical_key": "C",
        "scale": "major",
        "genre": "Electronic",
        "subgenre": "House",
        "mood": ["uplifting", "energetic"],
        "tags": ["synth", "dance"],
        "release_date": "2024-01-15",
    }
    body.update(overrides)
    return body


async def make_track(http: httpx.AsyncClient, user: TestUser, **overrides: Any) -> dict[str, Any]:
    response = await http.post("/tracks", json=track_body(**overrides), headers=user.headers)
    assert response.status_code == 201, response.text
    track: dict[str, Any] = response.json()
    return track


def audio_bytes(fmt: str, seconds: float = 1.0, rate: int = 44100) -> bytes:
    """A real encoded audio file: a 440 Hz tone with a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(1)
    mono = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
    samples = np.stack([mono, mono]).astype(np.float32)
    buffer = io.BytesIO()
    with AudioFile(buffer, "w", samplerate=rate, num_channels=2, format=fmt) as f:
        f.write(samples)
    return buffer.getvalue()


def upload_worker_env(server: ServerProcess, data_dir: Path) -> dict[str, str]:
    """Settings for extra server processes that take over upload jobs: an incoming directory
    of their own (so only they claim the job) and the session server's storage (which may
    analyse what they store), with a short lease and poll."""
    return {
        "BLENDTUNE_DATA_DIR": str(data_dir),
        "BLENDTUNE_STORAGE_DIR": str(Path(server.data_dir) / "storage"),
        "BLENDTUNE_UPLOAD_LEASE_SECONDS": "2",
        "BLENDTUNE_UPLOAD_POLL_SECONDS": "0.1",
    }


async def upload_to(server: ServerProcess, user: TestUser, data: bytes) -> uuid.UUID:
    """Upload ``data`` to ``server`` (202) and return the upload's id."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            "/uploads", files={"file": ("take.flac", data)}, headers=user.headers
        )
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])
