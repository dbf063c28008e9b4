"""Mashups in PostgreSQL: every statement of the mashups domain but the generation job's
(``generation.py``: its ``SKIP LOCKED`` claim and lease).

Functions take the caller's connection (the service holds the transaction) and return
msgspec Structs converted from the records (``db/rows.py``). Plain CRUD is written with
Piccolo's query builder (``db/query.py``); SQL stays for row locks, ``ON CONFLICT`` inserts,
joins and ordering by expressions.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from piccolo.columns import Column

from db import query
from db.pool import Connection
from db.rows import row_as, rows_as
from db.tables.mashups import Mashup, MashupInputTrack, MashupMember
from server.mashups import room, schemas
from server.problems import Problem
from server.share_codes import repository as store
from server.share_codes.schemas import ShareCode

NOT_FOUND = "No such mashup (or you are not one of its members)."


def mashup_not_found() -> Problem:
    # Non-members get the same answer as for a mashup that does not exist: no probing ids.
    return Problem(404, "not_found", NOT_FOUND)


class Standing(msgspec.Struct, frozen=True):
    """A member's standing in a mashup, read under the caller's transaction."""

    mashup_id: uuid.UUID
    owner_id: uuid.UUID
    role: schemas.Role

    @property
    def can_edit(self) -> bool:
        return self.role in room.EDITORS


async def standing(
    conn: Connection, mashup_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    """The user's membership; 404 for an unknown mashup and for non-members alike."""
    row = await conn.fetchrow(
        f"""
        SELECT m.id AS mashup_id, m.user_id AS owner_id, mm.role::text AS role
        FROM mashups m JOIN mashup_members mm ON mm.mashup_id = m.id AND mm.user_id = $2
        WHERE m.id = $1
        {"FOR UPDATE OF m" if lock else ""}
        """,
        mashup_id,
        user_id,
    )
    if row is None:
        raise mashup_not_found()
    return row_as(Standing, row)


async def require_editor(
    conn: Connection, mashup_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    found = await standing(conn, mashup_id, user_id, lock=lock)
    if not found.can_edit:
        raise Problem(403, "forbidden", "Viewers cannot change this mashup.")
    return found


async def require_owner(
    conn: Connection, mashup_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Standing:
    found = await standing(conn, mashup_id, user_id, lock=lock)
    if found.role != "owner":
        raise Problem(403, "not_owner", "Only the mashup's owner may do this.")
    return found


async def touch(conn: Connection, mashup_id: uuid.UUID) -> None:
    """Record a change (call it holding the row lock): ``updated_at`` versions room syncs.

    ``clock_timestamp()``, not ``now()``: a transaction that waited for the lock must get a
    later time than the one it waited for (SQL: Piccolo has no word for it).
    """
    await conn.execute("UPDATE mashups SET updated_at = clock_timestamp() WHERE id = $1", mashup_id)


# ------------------------------------------------------------------ mashups


async def insert(
    conn: Connection, owner_id: uuid.UUID, name: str, target_seconds: int
) -> uuid.UUID:
    """A new mashup with its owner as its first member."""
    mashup_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO mashups (user_id, name, target_duration_seconds) VALUES ($1, $2, $3)"
        " RETURNING id",
        owner_id,
        name,
        target_seconds,
    )
    # SQL: Piccolo's insert would send this process's clock for the defaults (joined_at),
    # and members are ordered by the database's.
    await conn.execute(
        "INSERT INTO mashup_members (mashup_id, user_id, role) VALUES ($1, $2, 'owner')",
        mashup_id,
        owner_id,
    )
    return mashup_id


async def update(
    conn: Connection, mashup_id: uuid.UUID, name: str | None, target_seconds: int | None
) -> None:
    values: dict[Column | str, object] = {}
    if name is not None:
        values[Mashup.name] = name
    if target_seconds is not None:
        values[Mashup.target_duration_seconds] = target_seconds
    if values:
        await query.execute(conn, Mashup.update(values).where(Mashup.id == mashup_id))


async def delete(conn: Connection, mashup_id: uuid.UUID) -> str | None:
    """Delete the mashup (a trigger deletes its room); the key of its stored output."""
    key: str | None = await query.fetchval(
        conn,
        Mashup.delete().where(Mashup.id == mashup_id).returning(Mashup.output_storage_key),
    )
    return key


async def target_seconds(conn: Connection, mashup_id: uuid.UUID) -> int:
    value: int = await query.fetchval(
        conn, Mashup.select(Mashup.target_duration_seconds).where(Mashup.id == mashup_id)
    )
    return value


async def output_key(conn: Connection, mashup_id: uuid.UUID) -> str | None:
    key: str | None = await query.fetchval(
        conn, Mashup.select(Mashup.output_storage_key).where(Mashup.id == mashup_id)
    )
    return key


# ------------------------------------------------------------------ members


async def member_count(conn: Connection, mashup_id: uuid.UUID, *, besides: uuid.UUID) -> int:
    """Members other than ``besides``."""
    count: int = await query.fetchval(
        conn,
        MashupMember.count().where(
            (MashupMember.mashup_id == mashup_id) & (MashupMember.user_id != besides)
        ),
    )
    return count


async def add_editor(conn: Connection, mashup_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Make ``user_id`` an editor unless they are a member already; whether they were added."""
    return await query.insert_if_absent(
        conn, "mashup_members", {"mashup_id": mashup_id, "user_id": user_id, "role": "editor"}
    )


async def set_role(
    conn: Connection, mashup_id: uuid.UUID, user_id: uuid.UUID, role: schemas.MemberRole
) -> bool:
    changed = await query.fetchval(
        conn,
        MashupMember.update({MashupMember.role: role})
        .where((MashupMember.mashup_id == mashup_id) & (MashupMember.user_id == user_id))
        .returning(MashupMember.id),
    )
    return changed is not None


async def remove_member(conn: Connection, mashup_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Remove a member and the input tracks they uploaded; whether they were a member."""
    gone = await query.fetchval(
        conn,
        MashupMember.delete()
        .where((MashupMember.mashup_id == mashup_id) & (MashupMember.user_id == user_id))
        .returning(MashupMember.id),
    )
    if gone is None:
        return False
    await conn.execute(
        "DELETE FROM mashup_input_tracks i USING uploaded_tracks t"
        " WHERE i.mashup_id = $1 AND t.id = i.uploaded_track_id AND t.user_id = $2",
        mashup_id,
        user_id,
    )
    return True


async def members(conn: Connection, mashup_id: uuid.UUID) -> list[schemas.Member]:
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
    return rows_as(schemas.Member, rows)


# ------------------------------------------------------------------ input tracks


class UploadState(msgspec.Struct, frozen=True):
    upload: str
    analysis: str

    @property
    def ready(self) -> bool:
        return self.upload == "uploaded" and self.analysis == "completed"


async def own_upload(
    conn: Connection, upload_id: uuid.UUID, user_id: uuid.UUID
) -> UploadState | None:
    row = await conn.fetchrow(
        "SELECT upload_status::text AS upload, analysis_status::text AS analysis"
        " FROM uploaded_tracks WHERE id = $1 AND user_id = $2",
        upload_id,
        user_id,
    )
    return None if row is None else row_as(UploadState, row)


async def input_count(conn: Connection, mashup_id: uuid.UUID) -> int:
    count: int = await query.fetchval(
        conn, MashupInputTrack.count().where(MashupInputTrack.mashup_id == mashup_id)
    )
    return count


async def add_input(conn: Connection, mashup_id: uuid.UUID, upload_id: uuid.UUID) -> bool:
    return await query.insert_if_absent(
        conn, "mashup_input_tracks", {"mashup_id": mashup_id, "uploaded_track_id": upload_id}
    )


async def input_uploader(
    conn: Connection, mashup_id: uuid.UUID, upload_id: uuid.UUID
) -> uuid.UUID | None:
    uploader: uuid.UUID | None = await conn.fetchval(
        "SELECT t.user_id FROM mashup_input_tracks i"
        " JOIN uploaded_tracks t ON t.id = i.uploaded_track_id"
        " WHERE i.mashup_id = $1 AND i.uploaded_track_id = $2",
        mashup_id,
        upload_id,
    )
    return uploader


async def remove_input(conn: Connection, mashup_id: uuid.UUID, upload_id: uuid.UUID) -> None:
    await query.execute(
        conn,
        MashupInputTrack.delete().where(
            (MashupInputTrack.mashup_id == mashup_id)
            & (MashupInputTrack.uploaded_track_id == upload_id)
        ),
    )


async def inputs(conn: Connection, mashup_id: uuid.UUID) -> list[schemas.Input]:
    rows = await conn.fetch(
        """
        SELECT t.id AS uploaded_track_id, t.user_id AS owner_id, t.original_filename,
               t.duration_seconds::float8 AS duration_seconds, t.bpm::float8 AS bpm,
               t.key_signature, i.created_at AS added_at
        FROM mashup_input_tracks i JOIN uploaded_tracks t ON t.id = i.uploaded_track_id
        WHERE i.mashup_id = $1
        ORDER BY i.created_at, t.id
        """,
        mashup_id,
    )
    return rows_as(schemas.Input, rows)


# ------------------------------------------------------------------ reading


async def summaries(conn: Connection, user_id: uuid.UUID) -> list[schemas.MashupSummary]:
    rows = await conn.fetch(
        """
        SELECT m.id, m.name, m.user_id AS owner_id, mm.role::text AS my_role,
               m.target_duration_seconds, m.created_at, m.updated_at,
               (SELECT count(*) FROM mashup_members a WHERE a.mashup_id = m.id) AS member_count
        FROM mashup_members mm JOIN mashups m ON m.id = mm.mashup_id
        WHERE mm.user_id = $1
        ORDER BY m.created_at DESC, m.id
        """,
        user_id,
    )
    return rows_as(schemas.MashupSummary, rows)


class Header(msgspec.Struct, frozen=True, kw_only=True):
    """The mashup's own columns as a member sees them (the detail without the room)."""

    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    my_role: schemas.Role
    target_duration_seconds: int
    generation_status: schemas.GenerationStatus
    share_code: ShareCode | None
    created_at: datetime
    updated_at: datetime


class _Code(msgspec.Struct, frozen=True):
    share_code: str | None
    share_code_expires_at: datetime | None
    code_live: bool
    my_role: schemas.Role


async def header(conn: Connection, mashup_id: uuid.UUID, user_id: uuid.UUID) -> Header:
    row = await conn.fetchrow(
        """
        SELECT m.id, m.name, m.user_id AS owner_id, mm.role::text AS my_role,
               m.target_duration_seconds, m.generation_status::text AS generation_status,
               m.created_at, m.updated_at, m.share_code, m.share_code_expires_at,
               (m.share_code IS NOT NULL AND m.share_code_expires_at > now()) AS code_live
        FROM mashups m JOIN mashup_members mm ON mm.mashup_id = m.id AND mm.user_id = $2
        WHERE m.id = $1
        """,
        mashup_id,
        user_id,
    )
    if row is None:
        raise mashup_not_found()
    code = row_as(_Code, row)
    share_code = None
    # The owner and editors see the live code; viewers do not.
    if code.my_role in room.EDITORS and code.code_live:
        assert code.share_code is not None and code.share_code_expires_at is not None
        share_code = store.displayed(code.share_code, code.share_code_expires_at)
    # ``share_code`` is a column too: the displayed one replaces it.
    return row_as(Header, row, extra={"share_code": share_code})


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


class _SyncRow(msgspec.Struct, frozen=True):
    version: int
    name: str
    owner_id: uuid.UUID
    target_duration_seconds: int


async def sync_op(conn: Connection, mashup_id: uuid.UUID) -> room.Sync | None:
    """The complete ``sync`` op for the mashup as the database has it (None if deleted).

    Read it in one transaction (REPEATABLE READ) so the version matches the picture.
    """
    row = await conn.fetchrow(
        "SELECT name, user_id AS owner_id, target_duration_seconds,"
        " (extract(epoch FROM updated_at) * 1000000)::bigint AS version"
        " FROM mashups WHERE id = $1",
        mashup_id,
    )
    if row is None:
        return None
    found = row_as(_SyncRow, row)
    return room.Sync(
        version=found.version,
        name=found.name,
        owner_id=found.owner_id,
        target_duration_seconds=found.target_duration_seconds,
        members=[
            room.RoomMember(user_id=m.user_id, username=m.username, role=m.role)
            for m in await members(conn, mashup_id)
        ],
        inputs=[input_track(i) for i in await inputs(conn, mashup_id)],
    )
