"""SQL for releases."""

from __future__ import annotations

import uuid
from typing import Any, Final

import asyncpg
import msgspec

from server.problems import Problem
from server.releases import schemas

RELEASE_COLUMNS: Final = """
    r.id, r.artist_id, r.title, r.genre, r.cover_art_url, r.status::text AS status,
    r.rejection_reason, r.submitted_at, r.reviewed_at, r.reviewed_by, r.created_at, r.updated_at
"""

_TRACKS: Final = """
SELECT id, title, uploaded_track_id AS upload_id, duration_seconds::float8 AS duration_seconds,
       track_order, isrc
FROM release_tracks WHERE release_id = $1 ORDER BY track_order
"""

# A track is ready for review once its upload (if any) is stored and analysed.
NOT_READY: Final = """
SELECT 1 FROM release_tracks rt JOIN uploaded_tracks u ON u.id = rt.uploaded_track_id
WHERE rt.release_id = r.id
  AND NOT (u.upload_status = 'uploaded' AND u.analysis_status IN ('completed', 'failed'))
"""


def release_from(row: asyncpg.Record) -> schemas.Release:
    return msgspec.convert(
        {k: row[k] for k in schemas.Release.__struct_fields__ if k != "tracks"}, schemas.Release
    )


async def with_tracks(conn: Any, release: schemas.Release) -> schemas.Release:
    rows = await conn.fetch(_TRACKS, release.id)
    release.tracks = [msgspec.convert(dict(r), schemas.ReleaseTrack) for r in rows]
    return release


async def visible_release(
    conn: Any, release_id: uuid.UUID, user_id: uuid.UUID, is_admin: bool, *, lock: bool = False
) -> schemas.Release:
    """The release if the caller may see it (owner, admin, or published); 404 otherwise."""
    row = await conn.fetchrow(
        f"SELECT {RELEASE_COLUMNS} FROM releases r WHERE r.id = $1"
        + (" FOR UPDATE" if lock else ""),
        release_id,
    )
    if row is None or not (is_admin or row["artist_id"] == user_id or row["status"] == "published"):
        raise Problem(404, "not_found", "No such release.")
    return release_from(row)


async def promote_processing_releases(conn: Any, upload_id: uuid.UUID) -> None:
    """Move releases waiting in 'processing' on this upload to review once all are ready."""
    await conn.execute(
        f"""
        UPDATE releases r SET status = 'pending_review', submitted_at = now(), updated_at = now()
        WHERE r.status = 'processing'
          AND r.id IN (SELECT release_id FROM release_tracks WHERE uploaded_track_id = $1)
          AND NOT EXISTS ({NOT_READY})
        """,
        upload_id,
    )
