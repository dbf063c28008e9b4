"""Releases in PostgreSQL: every statement of the releases domain.

Functions take the caller's connection and return msgspec Structs converted from the
records (``db/rows.py``). Plain CRUD is written with Piccolo's query builder
(``db/query.py``); SQL stays for row locks, the keyset pages (``server/catalog/common.py``),
the readiness test shared with the upload worker (``NOT_READY``) and the status change with
its computed timestamps.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec

from db import query
from db.pool import Connection, Pool
from db.rows import returned, row_as, rows_as
from db.tables.releases import Release, ReleaseTrack
from db.tables.uploads import UploadedTrack
from server.catalog.common import newest_first
from server.problems import Problem
from server.releases import lifecycle, schemas

RELEASE_COLUMNS: Final = """
    r.id, r.artist_id, r.title, r.genre, r.cover_art_url, r.status::text AS status,
    r.rejection_reason, r.submitted_at, r.reviewed_at, r.reviewed_by, r.created_at, r.updated_at
"""

# A track is ready for review once its upload (if any) is stored and analysed.
NOT_READY: Final = """
SELECT 1 FROM release_tracks rt JOIN uploaded_tracks u ON u.id = rt.uploaded_track_id
WHERE rt.release_id = r.id
  AND NOT (u.upload_status = 'uploaded' AND u.analysis_status IN ('completed', 'failed'))
"""


def release_not_found() -> Problem:
    return Problem(404, "not_found", "No such release.")


async def visible(
    conn: Connection,
    release_id: uuid.UUID,
    user_id: uuid.UUID,
    is_admin: bool,
    *,
    lock: bool = False,
) -> schemas.Release:
    """The release (without tracks) if the caller may see it (owner, admin, or published);
    404 otherwise."""
    row = await conn.fetchrow(
        f"SELECT {RELEASE_COLUMNS} FROM releases r WHERE r.id = $1"
        + (" FOR UPDATE" if lock else ""),
        release_id,
    )
    if row is None:
        raise release_not_found()
    release = row_as(schemas.Release, row)
    if not (is_admin or release.artist_id == user_id or release.status == "published"):
        raise release_not_found()
    return release


async def with_tracks(conn: Connection, release: schemas.Release) -> schemas.Release:
    rows = await query.fetch(
        conn,
        ReleaseTrack.select(
            ReleaseTrack.id,
            ReleaseTrack.title,
            ReleaseTrack.uploaded_track_id.as_alias("upload_id"),
            ReleaseTrack.duration_seconds,
            ReleaseTrack.track_order,
            ReleaseTrack.isrc,
        )
        .where(ReleaseTrack.release_id == release.id)
        .order_by(ReleaseTrack.track_order),
    )
    return msgspec.structs.replace(release, tracks=rows_as(schemas.ReleaseTrack, rows))


async def insert(
    conn: Connection, artist_id: uuid.UUID, data: schemas.ReleaseCreate
) -> schemas.Release:
    row = await conn.fetchrow(
        "INSERT INTO releases (artist_id, title, genre, cover_art_url) VALUES ($1, $2, $3, $4)"
        f" RETURNING {RELEASE_COLUMNS.replace('r.', '')}",
        artist_id,
        data.title,
        data.genre,
        data.cover_art_url,
    )
    return row_as(schemas.Release, returned(row))


async def update(conn: Connection, release_id: uuid.UUID, data: schemas.ReleaseUpdate) -> None:
    """Set the fields the request names (``UNSET`` ones keep their value)."""
    if await query.patch(conn, Release, release_id, data):
        await touch(conn, release_id)


async def touch(conn: Connection, release_id: uuid.UUID) -> None:
    await conn.execute("UPDATE releases SET updated_at = now() WHERE id = $1", release_id)


async def delete(conn: Connection, release_id: uuid.UUID) -> None:
    await query.execute(conn, Release.delete().where(Release.id == release_id))


async def page(
    pool: Pool,
    which: Literal["mine", "published", "review"],
    artist_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> schemas.ReleasePage:
    """A page of releases, newest first (keyset pages: SQL, server/catalog/common.py)."""
    args: list[Any] = []
    if which == "mine":
        args.append(artist_id)
        where = "r.artist_id = $2"
    elif which == "published":
        where = "r.status = 'published'"
    else:
        where = "r.status = 'pending_review'"
    rows, next_cursor = await newest_first(
        pool,
        f"SELECT {RELEASE_COLUMNS} FROM releases r",
        where,
        args,
        alias="r",
        limit=limit,
        cursor=cursor,
    )
    return schemas.ReleasePage(items=rows_as(schemas.Release, rows), next_cursor=next_cursor)


async def set_status(
    conn: Connection,
    release_id: uuid.UUID,
    target: lifecycle.Status,
    *,
    reviewed_by: uuid.UUID | None,
    reason: str | None,
) -> None:
    """Move the release to ``target``, stamping submission and (``reviewed_by``) review."""
    await conn.execute(
        """
        UPDATE releases SET status = $2::release_status, updated_at = now(),
            submitted_at = CASE WHEN $2 IN ('pending_review', 'processing')
                                THEN now() ELSE submitted_at END,
            reviewed_at = CASE WHEN $3::uuid IS NOT NULL THEN now() ELSE reviewed_at END,
            reviewed_by = coalesce($3::uuid, reviewed_by),
            rejection_reason = coalesce($4, rejection_reason)
        WHERE id = $1
        """,
        release_id,
        target,
        reviewed_by,
        reason,
    )


async def promote_processing_releases(conn: Connection, upload_id: uuid.UUID) -> None:
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


# ------------------------------------------------------------------ tracks


class Readiness(msgspec.Struct, frozen=True):
    tracks: int
    failed: int
    waiting: bool


async def readiness(conn: Connection, release_id: uuid.UUID) -> Readiness:
    """How many tracks, how many with a failed upload, and whether one still waits for its
    upload's analysis."""
    row = await conn.fetchrow(
        f"""
        SELECT (SELECT count(*) FROM release_tracks WHERE release_id = $1) AS tracks,
               (SELECT count(*) FROM release_tracks rt JOIN uploaded_tracks u
                    ON u.id = rt.uploaded_track_id
                WHERE rt.release_id = $1 AND u.upload_status = 'failed') AS failed,
               EXISTS ({NOT_READY.replace("r.id", "$1")}) AS waiting
        """,
        release_id,
    )
    return row_as(Readiness, returned(row))


class TrackCount(msgspec.Struct, frozen=True):
    count: int
    last: int


async def track_count(conn: Connection, release_id: uuid.UUID) -> TrackCount:
    row = await conn.fetchrow(
        "SELECT count(*) AS count, coalesce(max(track_order), 0) AS last FROM release_tracks"
        " WHERE release_id = $1",
        release_id,
    )
    return row_as(TrackCount, returned(row))


async def own_upload_duration(
    conn: Connection, upload_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[bool, float | None]:
    """Whether ``user_id`` owns the upload, and its analysed duration (None until then)."""
    row = await query.fetchrow(
        conn,
        UploadedTrack.select(UploadedTrack.duration_seconds).where(
            (UploadedTrack.id == upload_id) & (UploadedTrack.user_id == user_id)
        ),
    )
    if row is None:
        return False, None
    duration = row["duration_seconds"]
    return True, None if duration is None else float(duration)


async def insert_track(
    conn: Connection,
    release_id: uuid.UUID,
    data: schemas.ReleaseTrackCreate,
    duration: float,
    order: int,
) -> None:
    """Raises ``asyncpg.UniqueViolationError`` when the release has a track ``order``."""
    await conn.execute(
        "INSERT INTO release_tracks (release_id, uploaded_track_id, title,"
        " duration_seconds, track_order, isrc) VALUES ($1, $2, $3, $4, $5, $6)",
        release_id,
        data.upload_id,
        data.title,
        Decimal(str(round(duration, 2))),
        order,
        data.isrc,
    )


async def track_ids(conn: Connection, release_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await query.fetch(
        conn, ReleaseTrack.select(ReleaseTrack.id).where(ReleaseTrack.release_id == release_id)
    )
    return {r["id"] for r in rows}
