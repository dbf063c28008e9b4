"""Uploads in PostgreSQL: the statements of the uploads REST API (the worker's claims and
state changes, ``FOR UPDATE SKIP LOCKED`` and all, are in ``worker.py``).

Functions take the caller's connection and return msgspec Structs converted from the
records (``db/rows.py``). Everything here is SQL: the upload view joins its latest job
(``LATERAL``), the peaks are readable through a mashup membership, the pages are keyset
pages (``server/catalog/common.py``) and the delete locks the row and reads its files.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Final

import msgspec

from db.pool import Connection, Pool
from db.rows import row_as, rows_as
from dsp.codec import MIME_TYPES
from server.catalog.common import newest_first
from server.problems import Problem
from server.uploads.receive import Received
from server.uploads.schemas import Upload, UploadPage

_COLUMNS: Final = """
    u.id, u.original_filename, u.file_size_bytes, u.mime_type, u.format,
    u.upload_status::text AS upload_status, u.analysis_status::text AS analysis_status,
    u.bpm::float8 AS bpm, u.key_signature, u.duration_seconds::float8 AS duration_seconds,
    u.has_stems, u.analysis, u.structure,
    CASE WHEN u.peaks IS NOT NULL THEN '/uploads/' || u.id || '/peaks' END AS peaks_url,
    j.status::text AS job_status,
    coalesce(j.retry_count, 0) AS retry_count,
    CASE WHEN j.status = 'pending' THEN j.next_attempt_at END AS next_attempt_at,
    u.created_at, u.updated_at
"""
_FROM: Final = """
FROM uploaded_tracks u
LEFT JOIN LATERAL (
    SELECT status, retry_count, next_attempt_at FROM upload_jobs
    WHERE uploaded_track_id = u.id ORDER BY created_at DESC LIMIT 1
) j ON true
"""
_JSON: Final = ("analysis", "structure")

# The owner, or a member of a mashup that has the upload as an input.
_PEAKS: Final = """
SELECT u.peaks::text AS peaks, u.analysis_status::text AS analysis_status,
       (extract(epoch FROM u.updated_at) * 1000000)::bigint AS version
FROM uploaded_tracks u
WHERE u.id = $1
  AND (u.user_id = $2 OR EXISTS (
      SELECT 1 FROM mashup_input_tracks i
      JOIN mashup_members m ON m.mashup_id = i.mashup_id
      WHERE i.uploaded_track_id = u.id AND m.user_id = $2))
"""


def upload_not_found() -> Problem:
    return Problem(404, "not_found", "No such upload.")


async def fetch(conn: Connection, upload_id: uuid.UUID, owner: uuid.UUID) -> Upload:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} {_FROM} WHERE u.id = $1 AND u.user_id = $2", upload_id, owner
    )
    if row is None:
        raise upload_not_found()
    return row_as(Upload, row, json=_JSON)


async def page(pool: Pool, owner: uuid.UUID, limit: int, cursor: str | None) -> UploadPage:
    rows, next_cursor = await newest_first(
        pool,
        f"SELECT {_COLUMNS} {_FROM}",
        "u.user_id = $2",
        [owner],
        alias="u",
        limit=limit,
        cursor=cursor,
    )
    return UploadPage(items=rows_as(Upload, rows, json=_JSON), next_cursor=next_cursor)


async def record(conn: Connection, owner: uuid.UUID, received: Received) -> None:
    """The received upload and the job that moves it into storage, together."""
    await conn.execute(
        "INSERT INTO uploaded_tracks (id, user_id, original_filename,"
        " file_size_bytes, mime_type, format, duration_seconds)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        received.id,
        owner,
        received.original_filename,
        received.size,
        MIME_TYPES[received.info.format],
        received.info.format,
        Decimal(str(round(max(received.info.duration_seconds, 0.01), 2))),
    )
    await conn.execute(
        "INSERT INTO upload_jobs (kind, target_id, uploaded_track_id, user_id,"
        " local_path) VALUES ('audio', $1, $1, $2, $3)",
        received.id,
        owner,
        str(received.path),
    )


async def requeue_failed(conn: Connection, upload_id: uuid.UUID) -> bool:
    """Queue a failed move again, the job and the upload together; False when it had not
    failed."""
    job = await conn.fetchval(
        "UPDATE upload_jobs SET status = 'pending', retry_count = 0,"
        " next_attempt_at = now(), updated_at = now()"
        " WHERE uploaded_track_id = $1 AND status = 'failed' RETURNING id",
        upload_id,
    )
    if job is None:
        return False
    await conn.execute(
        "UPDATE uploaded_tracks SET upload_status = 'pending', updated_at = now() WHERE id = $1",
        upload_id,
    )
    return True


class PeaksRow(msgspec.Struct, frozen=True):
    peaks: str | None
    analysis_status: str
    version: int


async def peaks(conn: Connection, upload_id: uuid.UUID, reader: uuid.UUID) -> PeaksRow:
    row = await conn.fetchrow(_PEAKS, upload_id, reader)
    if row is None:
        raise upload_not_found()
    return row_as(PeaksRow, row)


class Files(msgspec.Struct, frozen=True):
    """What an upload keeps outside its row, and whether it may go now."""

    format: str
    storage_key: str | None
    harmonic_storage_key: str | None
    percussive_storage_key: str | None
    job_status: str | None
    local_path: str | None
    in_release: bool


async def lock_for_delete(conn: Connection, upload_id: uuid.UUID, owner: uuid.UUID) -> Files:
    row = await conn.fetchrow(
        "SELECT u.format, u.storage_key, u.harmonic_storage_key, u.percussive_storage_key,"
        " (SELECT status::text FROM upload_jobs WHERE uploaded_track_id = u.id"
        "  ORDER BY created_at DESC LIMIT 1) AS job_status,"
        " (SELECT local_path FROM upload_jobs WHERE uploaded_track_id = u.id"
        "  ORDER BY created_at DESC LIMIT 1) AS local_path,"
        " EXISTS (SELECT 1 FROM release_tracks WHERE uploaded_track_id = u.id) AS in_release"
        " FROM uploaded_tracks u WHERE u.id = $1 AND u.user_id = $2 FOR UPDATE OF u",
        upload_id,
        owner,
    )
    if row is None:
        raise upload_not_found()
    return row_as(Files, row)


async def delete(conn: Connection, upload_id: uuid.UUID) -> list[uuid.UUID]:
    """Delete the upload (its inputs and jobs go with it, ON DELETE CASCADE); the mashups it
    was an input of, touched so that their next room sync supersedes the last."""
    rows = await conn.fetch(
        "UPDATE mashups SET updated_at = clock_timestamp() WHERE id IN"
        " (SELECT mashup_id FROM mashup_input_tracks WHERE uploaded_track_id = $1)"
        " RETURNING id",
        upload_id,
    )
    await conn.execute("DELETE FROM uploaded_tracks WHERE id = $1", upload_id)
    return [r["id"] for r in rows]
