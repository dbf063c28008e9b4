"""Mashups' rules that span a transaction or a room read: what the REST controller and the
share-code controller call (docs/mashups.md)."""

from __future__ import annotations

import uuid

from litestar.datastructures import State

from db.pool import Connection
from server.mashups import live, queries, schemas
from server.problems import Problem
from server.services import Services, get_services
from server.settings import Settings
from server.share_codes import store
from server.share_codes.controller import Full, share_code_controller

# Bounds on what the room state carries (members and inputs are in every welcome).
MAX_MEMBERS = 50
MAX_INPUTS = 50


async def detail(
    services: Services, mashup_id: uuid.UUID, user_id: uuid.UUID
) -> schemas.MashupDetail:
    async with services.pool.acquire() as conn:
        row = await queries.detail_row(conn, mashup_id, user_id)
        members = await queries.members(conn, mashup_id)
        inputs = await queries.inputs(conn, mashup_id)
    # Read with the connection released: a request never holds two at once.
    found = await live.read_room(services, mashup_id)
    return schemas.MashupDetail(
        id=row["id"],
        name=row["name"],
        owner_id=row["user_id"],
        my_role=row["my_role"],
        target_duration_seconds=row["target_duration_seconds"],
        generation_status=row["status_text"],
        share_code=queries.share_code_of(row),
        members=members,
        inputs=inputs,
        seq=found[0] if found else None,
        timeline=found[1].timeline if found else None,
        previews=found[1].previews if found else [],
        export=found[1].export if found else None,
        generation=found[1].generation if found else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class MashupShares:
    """Mashups' side of the share-code controller: joining makes an editor (a member keeps
    the role they have)."""

    table: store.Table = "mashups"

    def default_days(self, settings: Settings) -> int:
        return settings.mashup_share_code_days

    async def admit(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        count = await conn.fetchval(
            "SELECT count(*) FILTER (WHERE user_id <> $2) FROM mashup_members WHERE mashup_id = $1",
            row_id,
            user_id,
        )
        if count >= MAX_MEMBERS:
            raise Full(Problem(409, "mashup_full", f"A mashup has at most {MAX_MEMBERS} members."))
        joined = await conn.fetchval(
            "INSERT INTO mashup_members (mashup_id, user_id, role)"
            " VALUES ($1, $2, 'editor') ON CONFLICT (mashup_id, user_id) DO NOTHING"
            " RETURNING id",
            row_id,
            user_id,
        )
        if joined is None:
            return False
        await queries.touch(conn, row_id)
        return True

    async def require_owner(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await queries.require_owner(conn, row_id, user_id, lock=True)

    async def announce(self, state: State, row_id: uuid.UUID) -> None:
        await live.publish_sync(get_services(state), row_id)

    async def answer(
        self, services: Services, row_id: uuid.UUID, user_id: uuid.UUID
    ) -> schemas.MashupDetail:
        return await detail(services, row_id, user_id)


ShareCodeController = share_code_controller(MashupShares(), "mashup_id", "join_mashup")
