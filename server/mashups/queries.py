"""Mashups in PostgreSQL: the SQL behind the REST API (asyncpg, explicit transactions).

Functions take an asyncpg connection and raise ``Problem`` with the codes docs/mashups.md
documents. Share codes (``server.share_codes``) are the same as blends'.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

from server.mashups import room, schemas
from server.problems import Problem
from server.share_codes import store
from server.share_codes.schemas import ShareCode

NOT_FOUND = "No such mashup (or you are not one of its members)."


def mashup_not_found() -> Problem:
    # Non-members get the same answer as for a mashup that does not exist: no probing ids.
    return Problem(404, "not_found", NOT_FOUND)


class Standing(msgspec.Struct, frozen=True):
    """A member's standing in a mashup, read under the caller's transaction."""

    mashup_id: uuid.UUID
    owner_id: uuid.UUID
    role: str

    @property
    def can_edit(self) -> bool:
        return self.role in room.EDITORS


async def standing(
    conn: Any, mashup_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    """The user's membership; 404 for an unknown mashup and for non-members alike."""
    row = await conn.fetchrow(
        f"""
        SELECT m.id, m.user_id, mm.role::text AS role
        FROM mashups m JOIN mashup_members mm ON mm.mashup_id = m.id AND mm.user_id = $2
        WHERE m.id = $1
        {"FOR UPDATE OF m" if lock else ""}
        """,
        mashup_id,
        user_id,
    )
    if row is None:
        raise mashup_not_found()
    return Standing(mashup_id=row["id"], owner_id=row["user_id"], role=row["role"])


async def require_editor(
    conn: Any, mashup_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    found = await standing(conn, mashup_id, user_id, lock=lock)
    if not found.can_edit:
        raise Problem(403, "forbidden", "Viewers cannot change this mashup.")
    return found


async def require_owner(
    conn: Any, mashup_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    found = await standing(conn, mashup_id, user_id, lock=lock)
    if found.role != "owner":
        raise Problem(403, "not_owner", "Only the mashup's owner may do this.")
    return found


async def touch(conn: Any, mashup_id: uuid.UUID) -> None:
    """Record a change (call it holding the row lock): ``updated_at`` versions room syncs.

    ``clock_timestamp()``, not ``now()``: a transaction that waited for the lock must get a
    later time than the one it waited for.
    """
    await conn.execute("UPDATE mashups SET updated_at = clock_timestamp() WHERE id = $1", mashup_id)


# ------------------------------------------------------------------ reading


async def summaries(conn: Any, user_id: uuid.UUID) -> list[schemas.MashupSummary]:
    rows = await conn.fetch(
        """
        SELECT m.id, m.name, m.user_id, mm.role::text AS my_role, m.target_duration_seconds,
               m.created_at, m.updated_at,
               (SELECT count(*) FROM mashup_members a WHERE a.mashup_id = m.id) AS member_count
        FROM mashup_members mm JOIN mashups m ON m.id = mm.mashup_id
        WHERE mm.user_id = $1
        ORDER BY m.created_at DESC, m.id
        """,
        user_id,
    )
    return [
        schemas.MashupSummary(
            id=r["id"],
            name=r["name"],
            owner_id=r["user_id"],
            my_role=r["my_role"],
            target_duration_seconds=r["target_duration_seconds"],
            member_count=r["member_count"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
        for r in rows
    ]


async def members(conn: Any, mashup_id: uuid.UUID) -> list[schemas.Member]:
    rows = await conn.fetch(
        """
        SELECT mm.user_id, u.username, p.display_name, mm.role::text AS role, mm.joined_at
        FROM mashup_members mm
        JOIN users u ON u.id = mm.user_id
        LEFT JOIN profiles p ON p.user_id = mm.user_id
        WHERE mm.mashup_id = $1
        ORDER BY mm.role <> 'owner', mm.joined_at, u.username
        """,
        mashup_id,
    )
    return [
        schemas.Member(
            user_id=r["user_id"],
            username=r["username"],
            display_name=r["display_name"],
            role=r["role"],
            joined_at=r["joined_at"],
        )
        for r in rows
    ]


async def inputs(conn: Any, mashup_id: uuid.UUID) -> list[schemas.Input]:
    rows = await conn.fetch(
        """
        SELECT t.id, t.user_id, t.original_filename, t.duration_seconds::float8 AS duration,
               t.bpm::float8 AS bpm, t.key_signature, i.created_at
        FROM mashup_input_tracks i JOIN uploaded_tracks t ON t.id = i.uploaded_track_id
        WHERE i.mashup_id = $1
        ORDER BY i.created_at, t.id
        """,
        mashup_id,
    )
    return [
        schemas.Input(
            uploaded_track_id=r["id"],
            owner_id=r["user_id"],
            original_filename=r["original_filename"],
            duration_seconds=r["duration"],
            bpm=r["bpm"],
            key_signature=r["key_signature"],
            added_at=r["created_at"],
        )
        for r in rows
    ]


async def detail_row(conn: Any, mashup_id: uuid.UUID, user_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        SELECT m.*, m.generation_status::text AS status_text, mm.role::text AS my_role,
               (m.share_code IS NOT NULL AND m.share_code_expires_at > now()) AS code_live
        FROM mashups m JOIN mashup_members mm ON mm.mashup_id = m.id AND mm.user_id = $2
        WHERE m.id = $1
        """,
        mashup_id,
        user_id,
    )
    if row is None:
        raise mashup_not_found()
    found: asyncpg.Record = row
    return found


def share_code_of(row: asyncpg.Record) -> ShareCode | None:
    if row["my_role"] not in room.EDITORS or not row["code_live"]:
        return None
    return store.displayed(row["share_code"], row["share_code_expires_at"])


# ------------------------------------------------------------------ the room's view


def input_track(item: schemas.Input) -> room.InputTrack:
    return room.InputTrack(
        track_id=str(item.uploaded_track_id),
        name=item.original_filename,
        owner_id=item.owner_id,
        duration_seconds=item.duration_seconds,
        bpm=item.bpm,
        key_signature=item.key_signature,
    )


async def sync_op(conn: Any, mashup_id: uuid.UUID) -> room.Sync | None:
    """The complete ``sync`` op for the mashup as the database has it (None if deleted).

    Read it in one transaction (REPEATABLE READ) so the version matches the picture.
    """
    row = await conn.fetchrow(
        "SELECT name, user_id, target_duration_seconds,"
        " (extract(epoch FROM updated_at) * 1000000)::bigint AS version"
        " FROM mashups WHERE id = $1",
        mashup_id,
    )
    if row is None:
        return None
    return room.Sync(
        version=row["version"],
        name=row["name"],
        owner_id=row["user_id"],
        target_duration_seconds=row["target_duration_seconds"],
        members=[
            room.RoomMember(user_id=m.user_id, username=m.username, role=m.role)
            for m in await members(conn, mashup_id)
        ],
        inputs=[input_track(i) for i in await inputs(conn, mashup_id)],
    )
