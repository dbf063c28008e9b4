"""Blends in PostgreSQL: every statement of the blends domain but the taste sources'
(``taste.py``) and the weave job's claim (``generation.py``).

Functions take the caller's connection (the service holds the transaction) and return
msgspec Structs converted from the records (``db/rows.py``); the columns are selected under
the Structs' field names. Plain CRUD is written with Piccolo's query builder
(``db/query.py``); SQL stays where the builder has no words for it: row locks (``FOR
UPDATE``), ``ON CONFLICT`` upserts, joins with computed columns (``is_owner``,
``code_live``) and ordering by expressions.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from db import query
from db.pool import Connection
from db.rows import row_as, rows_as
from db.tables.accounts import User
from db.tables.blends import Blend, BlendParticipant
from db.tables.blends import BlendTrack as BlendTrackRow
from server.blends import schemas
from server.blends.weave import Weave
from server.problems import Problem
from server.share_codes import repository as store

NOT_FOUND = "No such blend (or you are not one of its members)."


def blend_not_found() -> Problem:
    # Non-members get the same answer as for a blend that does not exist: no probing ids.
    return Problem(404, "not_found", NOT_FOUND)


def encode_json(value: object) -> str:
    return msgspec.json.encode(value).decode()


class Standing(msgspec.Struct, frozen=True):
    """A user's relation to a blend, read under the caller's transaction."""

    blend_id: uuid.UUID
    owner_id: uuid.UUID
    settings: schemas.BlendSettings
    status: schemas.ParticipantStatus | None  # None when not a participant

    @property
    def visible(self) -> bool:
        return self.status in ("pending", "accepted")


class Header(msgspec.Struct, frozen=True):
    """What a room sync needs of a blend."""

    name: str
    owner_id: uuid.UUID
    settings: schemas.BlendSettings


async def standing(
    conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    """The user's standing in the blend; 404 when the blend does not exist."""
    row = await conn.fetchrow(
        f"""
        SELECT b.id AS blend_id, b.created_by AS owner_id, b.blend_settings AS settings,
               p.status::text AS status
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
    return row_as(Standing, row, json=("settings",))


async def require_owner(
    conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    found = await standing(conn, blend_id, user_id, lock=lock)
    if found.status != "accepted":
        raise blend_not_found()
    if found.owner_id != user_id:
        raise Problem(403, "not_owner", "Only the blend's owner may do this.")
    return found


async def header(conn: Connection, blend_id: uuid.UUID) -> Header | None:
    row = await query.fetchrow(
        conn,
        Blend.select(
            Blend.name,
            Blend.created_by.as_alias("owner_id"),
            Blend.blend_settings.as_alias("settings"),
        ).where(Blend.id == blend_id),
    )
    return None if row is None else row_as(Header, row, json=("settings",))


async def user_exists(conn: Connection, user_id: uuid.UUID) -> bool:
    return bool(await query.fetchval(conn, User.exists().where(User.id == user_id)))


# ------------------------------------------------------------------ blends


async def insert(
    conn: Connection, owner_id: uuid.UUID, name: str, settings: schemas.BlendSettings
) -> uuid.UUID:
    blend_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO blends (created_by, name, blend_settings) VALUES ($1, $2, $3::jsonb)"
        " RETURNING id",
        owner_id,
        name,
        encode_json(settings),
    )
    return blend_id


async def update(
    conn: Connection, blend_id: uuid.UUID, name: str | None, settings: schemas.BlendSettings
) -> None:
    await conn.execute(
        "UPDATE blends SET name = coalesce($2, name), blend_settings = $3::jsonb WHERE id = $1",
        blend_id,
        name,
        encode_json(settings),
    )


async def delete(conn: Connection, blend_id: uuid.UUID) -> None:
    await query.execute(conn, Blend.delete().where(Blend.id == blend_id))


async def mark_pending(conn: Connection, blend_id: uuid.UUID) -> None:
    """Ask for a regeneration (the generation job picks pending blends up)."""
    await query.execute(conn, Blend.update({Blend.status: "pending"}).where(Blend.id == blend_id))


async def mark_pending_for_member(conn: Connection, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Every blend ``user_id`` is an accepted member of needs weaving again (their taste
    changed); their ids."""
    rows = await conn.fetch(
        """
        UPDATE blends SET status = 'pending'
        WHERE id IN (SELECT blend_id FROM blend_participants
                     WHERE user_id = $1 AND status = 'accepted')
        RETURNING id
        """,
        user_id,
    )
    return [r["id"] for r in rows]


# ------------------------------------------------------------------ participants


async def participant_status(
    conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID
) -> schemas.ParticipantStatus | None:
    status: schemas.ParticipantStatus | None = await query.fetchval(
        conn,
        BlendParticipant.select(BlendParticipant.status).where(
            (BlendParticipant.blend_id == blend_id) & (BlendParticipant.user_id == user_id)
        ),
    )
    return status


async def accepted_count(conn: Connection, blend_id: uuid.UUID) -> int:
    count: int = await query.fetchval(
        conn,
        BlendParticipant.count().where(
            (BlendParticipant.blend_id == blend_id) & (BlendParticipant.status == "accepted")
        ),
    )
    return count


async def reserved_count(conn: Connection, blend_id: uuid.UUID) -> int:
    """Accepted members and pending invitations: the places taken in the blend."""
    count: int = await query.fetchval(
        conn,
        BlendParticipant.count().where(
            (BlendParticipant.blend_id == blend_id)
            & BlendParticipant.status.is_in(["accepted", "pending"])
        ),
    )
    return count


async def accepted_members(conn: Connection, blend_id: uuid.UUID) -> list[uuid.UUID]:
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


async def invite(conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Make ``user_id`` a pending invitee (also after an earlier decline)."""
    await conn.execute(
        """
        INSERT INTO blend_participants (blend_id, user_id, status) VALUES ($1, $2, 'pending')
        ON CONFLICT (blend_id, user_id) DO UPDATE SET status = 'pending'
        """,
        blend_id,
        user_id,
    )


async def decline(conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await query.execute(
        conn,
        BlendParticipant.update({BlendParticipant.status: "declined"}).where(
            (BlendParticipant.blend_id == blend_id) & (BlendParticipant.user_id == user_id)
        ),
    )


async def remove(
    conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID
) -> schemas.ParticipantStatus | None:
    """Remove a participant; the status they had, None when they were none."""
    status: schemas.ParticipantStatus | None = await query.fetchval(
        conn,
        BlendParticipant.delete()
        .where((BlendParticipant.blend_id == blend_id) & (BlendParticipant.user_id == user_id))
        .returning(BlendParticipant.status),
    )
    return status


# ------------------------------------------------------------------ reading


async def summaries(conn: Connection, user_id: uuid.UUID) -> list[schemas.BlendSummary]:
    rows = await conn.fetch(
        """
        SELECT b.id, b.name, b.created_by AS owner_id, b.status::text AS status,
               b.blend_settings AS settings, p.status::text AS my_status, b.created_at,
               b.completed_at,
               (SELECT count(*) FROM blend_participants a
                WHERE a.blend_id = b.id AND a.status = 'accepted') AS member_count
        FROM blend_participants p JOIN blends b ON b.id = p.blend_id
        WHERE p.user_id = $1 AND p.status IN ('pending', 'accepted')
        ORDER BY b.created_at DESC, b.id
        """,
        user_id,
    )
    return rows_as(schemas.BlendSummary, rows, json=("settings",))


async def members(conn: Connection, blend_id: uuid.UUID) -> list[schemas.Member]:
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
    return rows_as(schemas.Member, rows)


class _DetailRow(msgspec.Struct, frozen=True):
    share_code: str | None
    share_code_expires_at: datetime | None
    code_live: bool
    my_status: schemas.ParticipantStatus


async def detail(conn: Connection, blend_id: uuid.UUID, user_id: uuid.UUID) -> schemas.BlendDetail:
    row = await conn.fetchrow(
        """
        SELECT b.id, b.name, b.created_by AS owner_id, b.status::text AS status,
               b.blend_settings AS settings, p.status::text AS my_status,
               nullif(b.taste_match, '{}'::jsonb) AS taste_match, b.created_at,
               b.completed_at, b.share_code, b.share_code_expires_at,
               (b.share_code IS NOT NULL AND b.share_code_expires_at > now()) AS code_live
        FROM blends b JOIN blend_participants p ON p.blend_id = b.id AND p.user_id = $2
        WHERE b.id = $1 AND p.status IN ('pending', 'accepted')
        """,
        blend_id,
        user_id,
    )
    if row is None:
        raise blend_not_found()
    tracks = await query.fetch(
        conn,
        BlendTrackRow.select(
            BlendTrackRow.position,
            BlendTrackRow.track_id,
            BlendTrackRow.track_name.as_alias("name"),
            BlendTrackRow.artist_name.as_alias("artist"),
            BlendTrackRow.album_name.as_alias("album"),
            BlendTrackRow.album_art_url,
            BlendTrackRow.duration_ms,
            BlendTrackRow.isrc,
            BlendTrackRow.source_provider.as_alias("source"),
            BlendTrackRow.contributed_by,
            BlendTrackRow.contributors,
        )
        .where(BlendTrackRow.blend_id == blend_id)
        .order_by(BlendTrackRow.position),
    )
    code = row_as(_DetailRow, row)
    share_code = None
    if code.my_status == "accepted" and code.code_live:
        assert code.share_code is not None and code.share_code_expires_at is not None
        share_code = store.displayed(code.share_code, code.share_code_expires_at)
    return row_as(
        schemas.BlendDetail,
        row,
        json=("settings", "taste_match"),
        extra={
            "share_code": share_code,
            "members": await members(conn, blend_id),
            "tracks": rows_as(schemas.BlendTrack, tracks),
        },
    )


# ------------------------------------------------------------------ generation results


async def store_weave(conn: Connection, blend_id: uuid.UUID, result: Weave) -> None:
    await query.execute(conn, BlendTrackRow.delete().where(BlendTrackRow.blend_id == blend_id))
    # One statement for the whole playlist (executemany), not a Piccolo insert per row.
    await conn.executemany(
        """
        INSERT INTO blend_tracks (blend_id, contributed_by, contributors, track_id, track_name,
            artist_name, album_name, album_art_url, duration_ms, isrc, position, source_provider)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """,
        [
            (blend_id, t.contributed_by, t.contributors, *t.columns(), position, t.source)
            for position, t in enumerate(result.tracks)
        ],
    )
    await conn.execute(
        "UPDATE blends SET taste_match = $2::jsonb WHERE id = $1",
        blend_id,
        encode_json(result.taste_match),
    )
