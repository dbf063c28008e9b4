"""Blends in PostgreSQL: the SQL behind the REST API (asyncpg, explicit transactions).

Functions take an asyncpg connection (or the pool for single statements) and raise
``Problem`` with the codes docs/blends.md documents.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from db.pool import Connection
from server.blends import schemas
from server.blends.weave import TasteMatch, Weave
from server.problems import Problem
from server.share_codes import store

NOT_FOUND = "No such blend (or you are not one of its members)."


def blend_not_found() -> Problem:
    # Non-members get the same answer as for a blend that does not exist: no probing ids.
    return Problem(404, "not_found", NOT_FOUND)


def decode_settings(raw: Any) -> schemas.BlendSettings:
    if isinstance(raw, str):
        return msgspec.json.decode(raw, type=schemas.BlendSettings)
    return msgspec.convert(raw or {}, schemas.BlendSettings)


def encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


class Standing(msgspec.Struct, frozen=True):
    """A user's relation to a blend, read under the caller's transaction."""

    blend_id: uuid.UUID
    owner_id: uuid.UUID
    settings: schemas.BlendSettings
    status: str | None  # the user's participant status, None when not a participant

    @property
    def visible(self) -> bool:
        return self.status in ("pending", "accepted")


async def standing(
    conn: Any, blend_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    """The user's standing in the blend; 404 when the blend does not exist."""
    row = await conn.fetchrow(
        f"""
        SELECT b.id, b.created_by, b.blend_settings, p.status::text AS status
        FROM blends b
        LEFT JOIN blend_participants p ON p.blend_id = b.id AND p.user_id = $2
        WHERE b.id = $1
        {"FOR UPDATE OF b" if lock else ""}
        """,
        blend_id,
        user_id,
    )
    if row is None:
        raise blend_not_found()
    return Standing(
        blend_id=row["id"],
        owner_id=row["created_by"],
        settings=decode_settings(row["blend_settings"]),
        status=row["status"],
    )


async def require_visible(conn: Any, blend_id: uuid.UUID, user_id: uuid.UUID) -> Standing:
    found = await standing(conn, blend_id, user_id)
    if not found.visible:
        raise blend_not_found()
    return found


async def require_owner(
    conn: Any, blend_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    found = await standing(conn, blend_id, user_id, lock=lock)
    if found.status != "accepted":
        raise blend_not_found()
    if found.owner_id != user_id:
        raise Problem(403, "not_owner", "Only the blend's owner may do this.")
    return found


async def accepted_count(conn: Any, blend_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM blend_participants WHERE blend_id = $1 AND status = 'accepted'",
        blend_id,
    )
    return count


async def accepted_members(conn: Any, blend_id: uuid.UUID) -> list[uuid.UUID]:
    """Accepted members, owner first, then in joining order (the weave's member order)."""
    rows = await conn.fetch(
        """
        SELECT p.user_id FROM blend_participants p JOIN blends b ON b.id = p.blend_id
        WHERE p.blend_id = $1 AND p.status = 'accepted'
        ORDER BY p.user_id <> b.created_by, p.joined_at, p.user_id
        """,
        blend_id,
    )
    return [r["user_id"] for r in rows]


async def mark_pending(conn: Any, blend_id: uuid.UUID) -> None:
    """Ask for a regeneration (the generation job picks pending blends up)."""
    await conn.execute("UPDATE blends SET status = 'pending' WHERE id = $1", blend_id)


async def accept(conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Make ``user_id`` an accepted member (from any earlier status, or none)."""
    await conn.execute(
        """
        INSERT INTO blend_participants (blend_id, user_id, status, joined_at)
        VALUES ($1, $2, 'accepted', now())
        ON CONFLICT (blend_id, user_id) DO UPDATE SET status = 'accepted', joined_at = now()
        """,
        blend_id,
        user_id,
    )


# ------------------------------------------------------------------ reading


async def summaries(conn: Any, user_id: uuid.UUID) -> list[schemas.BlendSummary]:
    rows = await conn.fetch(
        """
        SELECT b.id, b.name, b.created_by, b.status::text AS status, b.blend_settings,
               p.status::text AS my_status, b.created_at, b.completed_at,
               (SELECT count(*) FROM blend_participants a
                WHERE a.blend_id = b.id AND a.status = 'accepted') AS member_count
        FROM blend_participants p JOIN blends b ON b.id = p.blend_id
        WHERE p.user_id = $1 AND p.status IN ('pending', 'accepted')
        ORDER BY b.created_at DESC, b.id
        """,
        user_id,
    )
    return [
        schemas.BlendSummary(
            id=r["id"],
            name=r["name"],
            owner_id=r["created_by"],
            status=r["status"],
            settings=decode_settings(r["blend_settings"]),
            my_status=r["my_status"],
            member_count=r["member_count"],
            created_at=r["created_at"],
            completed_at=r["completed_at"],
        )
        for r in rows
    ]


async def members(conn: Any, blend_id: uuid.UUID) -> list[schemas.Member]:
    rows = await conn.fetch(
        """
        SELECT p.user_id, u.username, pr.display_name, p.status::text AS status,
               p.user_id = b.created_by AS is_owner, p.joined_at
        FROM blend_participants p
        JOIN blends b ON b.id = p.blend_id
        JOIN users u ON u.id = p.user_id
        LEFT JOIN profiles pr ON pr.user_id = p.user_id
        WHERE p.blend_id = $1
        ORDER BY p.user_id <> b.created_by, p.joined_at NULLS LAST, u.username
        """,
        blend_id,
    )
    return [
        schemas.Member(
            user_id=r["user_id"],
            username=r["username"],
            display_name=r["display_name"],
            status=r["status"],
            is_owner=r["is_owner"],
            joined_at=r["joined_at"],
        )
        for r in rows
    ]


async def detail(conn: Any, blend_id: uuid.UUID, user_id: uuid.UUID) -> schemas.BlendDetail:
    row = await conn.fetchrow(
        """
        SELECT b.*, b.status::text AS status_text, p.status::text AS my_status,
               (b.share_code IS NOT NULL AND b.share_code_expires_at > now()) AS code_live
        FROM blends b JOIN blend_participants p ON p.blend_id = b.id AND p.user_id = $2
        WHERE b.id = $1 AND p.status IN ('pending', 'accepted')
        """,
        blend_id,
        user_id,
    )
    if row is None:
        raise blend_not_found()
    track_rows = await conn.fetch(
        "SELECT * FROM blend_tracks WHERE blend_id = $1 ORDER BY position", blend_id
    )
    share_code = None
    if row["my_status"] == "accepted" and row["code_live"]:
        share_code = store.displayed(row["share_code"], row["share_code_expires_at"])
    taste_raw = row["taste_match"]
    if isinstance(taste_raw, str):
        taste_raw = msgspec.json.decode(taste_raw)
    return schemas.BlendDetail(
        id=row["id"],
        name=row["name"],
        owner_id=row["created_by"],
        status=row["status_text"],
        settings=decode_settings(row["blend_settings"]),
        my_status=row["my_status"],
        share_code=share_code,
        members=await members(conn, blend_id),
        tracks=[
            schemas.BlendTrack(
                position=t["position"],
                track_id=t["track_id"],
                name=t["track_name"],
                artist=t["artist_name"],
                album=t["album_name"],
                album_art_url=t["album_art_url"],
                duration_ms=t["duration_ms"],
                isrc=t["isrc"],
                source=t["source_provider"],
                contributed_by=t["contributed_by"],
                contributors=list(t["contributors"]),
            )
            for t in track_rows
        ],
        taste_match=msgspec.convert(taste_raw, TasteMatch) if taste_raw else None,
        created_at=row["created_at"],
        completed_at=row["completed_at"],
    )


# ------------------------------------------------------------------ generation results


async def store_weave(conn: Any, blend_id: uuid.UUID, result: Weave) -> None:
    await conn.execute("DELETE FROM blend_tracks WHERE blend_id = $1", blend_id)
    await conn.executemany(
        """
        INSERT INTO blend_tracks (blend_id, contributed_by, contributors, track_id, track_name,
            artist_name, album_name, album_art_url, duration_ms, isrc, position, source_provider)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """,
        [
            (
                blend_id,
                t.contributed_by,
                t.contributors,
                t.track_id,
                t.name,
                t.artist,
                t.album,
                t.album_art_url,
                t.duration_ms,
                t.isrc,
                position,
                t.source,
            )
            for position, t in enumerate(result.tracks)
        ],
    )
    await conn.execute(
        "UPDATE blends SET taste_match = $2::jsonb WHERE id = $1",
        blend_id,
        encode_json(result.taste_match),
    )
