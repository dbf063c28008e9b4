"""Blends' rules that span a transaction: what the REST controller and the share-code
controller call (docs/blends.md)."""

from __future__ import annotations

import uuid

from litestar.datastructures import State

from db.pool import Connection
from server.blends import live, queries, schemas
from server.blends.generation import BlendJobs
from server.problems import Problem
from server.services import Services, get_services
from server.settings import Settings
from server.share_codes import store
from server.share_codes.controller import Full, share_code_controller


def blend_full(limit: int) -> Problem:
    return Problem(409, "blend_full", f"This blend already has its {limit} members.")


async def changed(
    services: Services, jobs: BlendJobs, blend_id: uuid.UUID, *, with_name: bool = False
) -> None:
    """After a committed change: tell the room, and weave again."""
    await live.publish_sync(services, blend_id, with_name=with_name)
    jobs.kick(blend_id)


class BlendShares:
    """Blends' side of the share-code controller: joining makes an accepted member."""

    table: store.Table = "blends"

    def default_days(self, settings: Settings) -> int:
        return settings.blend_share_code_days

    async def admit(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        found = await queries.standing(conn, row_id, user_id, lock=True)
        if found.status == "accepted":
            return False
        if await queries.accepted_count(conn, row_id) >= found.settings.member_limit:
            raise Full(blend_full(found.settings.member_limit))
        await queries.accept(conn, row_id, user_id)
        await queries.mark_pending(conn, row_id)
        return True

    async def require_owner(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await queries.require_owner(conn, row_id, user_id, lock=True)

    async def announce(self, state: State, row_id: uuid.UUID) -> None:
        await changed(get_services(state), state.blend_jobs, row_id)

    async def answer(
        self, services: Services, row_id: uuid.UUID, user_id: uuid.UUID
    ) -> schemas.BlendDetail:
        async with services.pool.acquire() as conn:
            return await queries.detail(conn, row_id, user_id)


ShareCodeController = share_code_controller(BlendShares(), "blend_id", "join_blend")
