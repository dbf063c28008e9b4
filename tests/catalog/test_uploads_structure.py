"""The deeper analysis of uploads, against the running server: structure, stems, peaks."""

from __future__ import annotations

import io
import struct
import uuid
from pathlib import Path

import asyncpg
import httpx
import msgspec
import numpy as np
import pytest

import dsp
from db.migrate import MIGRATIONS
from dsp.structure import Peaks, Structure
from tests.catalog.helpers import make_user
from tests.catalog.test_uploads import analysed, upload, wait_for
from tests.dsp.corpus import song
from tests.mashups.support import create_mashup, join_by_code
from tests.support import ServerProcess

FORM = (("intro", 4), ("verse", 8), ("chorus", 8))


@pytest.fixture(scope="module")
def song_flac() -> bytes:
    item = song(140.0, 9, "minor", FORM, seed=77)
    buffer = io.BytesIO()
    buffer.write(dsp.encode(item.audio, "flac"))
    return buffer.getvalue()


async def test_analysis_stores_structure_stems_and_peaks(
    http: httpx.AsyncClient, db: asyncpg.Connection, server: ServerProcess, song_flac: bytes
) -> None:
    user = await make_user(db)
    response = await upload(http, user, song_flac, "song.flac")
    assert response.status_code == 202, response.text
    accepted = response.json()
    # Stems are the server's to make: none before the analysis.
    assert accepted["has_stems"] is False and accepted["structure"] is None
    assert accepted["peaks_url"] is None
    done = await wait_for(http, user, accepted["id"], analysed)
    assert done["analysis_status"] == "completed", done["analysis"]
    assert done["has_stems"] is True
    structure = msgspec.convert(done["structure"], Structure)
    assert structure.has_stems is True
    assert structure.bpm is not None and abs(structure.bpm / 140.0 - 1) < 0.04
    assert len(structure.downbeats) >= 18
    assert structure.sections and structure.sections[0].start_bar == 0
    assert structure.sections[-1].end_bar == len(structure.downbeats)
    assert done["peaks_url"] == f"/uploads/{done['id']}/peaks"
    listed = (await http.get("/uploads", headers=user.headers)).json()["items"]
    assert listed[0]["structure"] == done["structure"] and listed[0]["has_stems"] is True

    upload_id = uuid.UUID(done["id"])
    row = await db.fetchrow(
        "SELECT storage_key, harmonic_storage_key, percussive_storage_key"
        " FROM uploaded_tracks WHERE id = $1",
        upload_id,
    )
    assert row is not None
    assert row["harmonic_storage_key"] == f"stems/{user.id.hex}/{upload_id.hex}-harmonic.flac"
    root = Path(server.data_dir) / "storage"
    original = dsp.decode_file(root / row["storage_key"])
    harmonic = dsp.decode_file(root / row["harmonic_storage_key"])
    percussive = dsp.decode_file(root / row["percussive_storage_key"])
    assert harmonic.frames == percussive.frames == original.frames
    # The stems add up to the track (16-bit FLAC rounding aside).
    residual = harmonic.samples + percussive.samples - original.samples
    assert float(np.abs(residual).max()) < 1e-3
    assert float(np.abs(percussive.samples).max()) > 0.05  # and neither is empty
    assert float(np.abs(harmonic.samples).max()) > 0.05

    # An upload analysed before structure analysis existed: the upgrade's migration queues it
    # (and only it) for analysis again, and the worker stores its structure and stems.
    await db.execute(
        "UPDATE uploaded_tracks SET structure = NULL, peaks = NULL, has_stems = false,"
        " harmonic_storage_key = NULL, percussive_storage_key = NULL WHERE id = $1",
        upload_id,
    )
    requeue = (MIGRATIONS / "schema_upload_reanalysis.sql").read_text()
    assert await db.execute(requeue) == "UPDATE 1"
    again = await wait_for(http, user, accepted["id"], lambda b: b["structure"] is not None)
    assert again["analysis_status"] == "completed" and again["has_stems"] is True
    assert again["structure"]["sections"] == done["structure"]["sections"]
    assert await db.execute(requeue) == "UPDATE 0"


async def test_peaks_for_the_owner_and_mashup_members_only(
    http: httpx.AsyncClient, db: asyncpg.Connection, song_flac: bytes
) -> None:
    owner = await make_user(db)
    member = await make_user(db)
    stranger = await make_user(db)
    done = await wait_for(
        http, owner, (await upload(http, owner, song_flac, "s.flac")).json()["id"], analysed
    )
    url = done["peaks_url"]
    response = await http.get(url, headers=owner.headers)
    assert response.status_code == 200, response.text
    peaks = msgspec.json.decode(response.content, type=Peaks)
    assert peaks.duration == pytest.approx(done["analysis"]["duration_seconds"], abs=0.01)
    sizes = [len(level.max) for level in peaks.levels]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 3
    for level in peaks.levels:
        assert len(level.min) == len(level.max)
        assert len(level.max) == pytest.approx(peaks.duration / level.seconds_per_peak, abs=1)
        assert all(-127 <= lo <= hi <= 127 for lo, hi in zip(level.min, level.max, strict=True))
    assert max(peaks.levels[0].max) > 60  # the song peaks near 0.7 of full scale
    assert len(response.content) < 200_000
    assert "private" in response.headers["cache-control"]
    etag = response.headers["etag"]
    cached = await http.get(url, headers={**owner.headers, "If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""

    # Someone else: not found, as if the upload did not exist.
    refused = await http.get(url, headers=stranger.headers)
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    # A member of a mashup that uses the upload as an input may read them.
    mashup = await create_mashup(http, owner)
    added = await http.post(
        f"/mashups/{mashup['id']}/inputs",
        json={"uploaded_track_id": done["id"]},
        headers=owner.headers,
    )
    assert added.status_code == 201, added.text
    assert (await http.get(url, headers=member.headers)).status_code == 404
    await join_by_code(http, member, mashup["share_code"]["code"])
    shared = await http.get(url, headers=member.headers)
    assert shared.status_code == 200 and shared.content == response.content
    # ...but not the upload itself, which stays private to its owner.
    assert (await http.get(f"/uploads/{done['id']}", headers=member.headers)).status_code == 404


async def test_peaks_errors(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    user = await make_user(db)
    unknown = await http.get(f"/uploads/{uuid.uuid4()}/peaks", headers=user.headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert unknown.headers["content-type"].startswith("application/problem+json")
    # A malformed id matches no route: 404 like an unknown one (as DELETE /uploads/{id}).
    malformed = await http.get("/uploads/not-a-uuid/peaks", headers=user.headers)
    assert malformed.status_code == 404 and malformed.json()["code"] == "not_found"
    anonymous = await http.get(f"/uploads/{uuid.uuid4()}/peaks")
    assert anonymous.status_code == 401
    # An upload not analysed yet: a row with no job, so no worker will touch it.
    pending = await db.fetchval(
        "INSERT INTO uploaded_tracks (user_id, original_filename, file_size_bytes, mime_type,"
        " format) VALUES ($1, 'a.wav', 100, 'audio/wav', 'wav') RETURNING id",
        user.id,
    )
    early = await http.get(f"/uploads/{pending}/peaks", headers=user.headers)
    assert early.status_code == 409 and early.json()["code"] == "not_analysed"
    assert "pending" in early.json()["detail"]
    body = (await http.get(f"/uploads/{pending}", headers=user.headers)).json()
    assert body["peaks_url"] is None and body["structure"] is None


def wav_with_header(rate: int, channels: int, data: bytes, bits: int = 16) -> bytes:
    """A PCM WAV whose header claims ``rate`` Hz and ``channels`` over ``data``."""
    block = max(channels, 1) * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) % 2**32, block % 2**16, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("rate", "channels", "says"),
    [(1, 2, "sample rate of 1 Hz"), (0, 2, "sample rate of 0 Hz"), (44100, 65535, "65535")],
)
async def test_absurd_headers_are_refused_at_upload(
    http: httpx.AsyncClient, db: asyncpg.Connection, rate: int, channels: int, says: str
) -> None:
    user = await make_user(db)
    response = await upload(http, user, wav_with_header(rate, channels, bytes(4000)), "x.wav")
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_audio"
    assert says in response.json()["detail"]
    assert (
        await db.fetchval("SELECT count(*) FROM uploaded_tracks WHERE user_id = $1", user.id) == 0
    )


async def test_audio_longer_than_the_limit_is_refused_at_upload(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # 31 minutes (the limit is 30) of real frames: 4 kHz, mono, 8-bit keeps it to 7.4 MB.
    user = await make_user(db)
    payload = wav_with_header(4000, 1, bytes([128]) * (4000 * 31 * 60), bits=8)
    response = await upload(http, user, payload, "long.wav")
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "audio_too_long"
