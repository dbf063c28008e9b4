"""GET endpoints for a room's history, shared by the blend and mashup rooms.

Members of the room (any role) may read; anyone else gets 404, as if the room did not exist.
Every endpoint reads in one repeatable-read transaction on one connection; none writes.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

from litestar import Controller, get
from litestar.params import Parameter

from rooms import history
from rooms.history import HistoryError
from rooms.history_store import HistoryPage, page, state_at, version_state, versions
from rooms.kinds import RoomKind
from server.auth import Principal
from server.blends.room import BlendRoom
from server.history.schemas import StateAt, VersionDetail, VersionList
from server.mashups.room import MashupRoom
from server.problems import Problem
from server.services import Services

MAX_SEQ = 2**63 - 1  # PostgreSQL bigint
_STATUS = {history.HISTORY_UNAVAILABLE: 410, history.INVALID: 400}


def _problem(exc: HistoryError) -> Problem:
    status = _STATUS.get(exc.code, 400)
    return Problem(status, "invalid_request" if status == 400 else exc.code, exc.detail)


class _History(Controller):
    kind: ClassVar[RoomKind[Any, Any]]

    async def _member(self, services: Services, room_id: uuid.UUID, user_id: uuid.UUID) -> None:
        if await self.kind.membership(services, room_id, user_id) is None:
            raise Problem(404, "not_found", "No such room, or you are not a member of it.")

    @get("/history")
    async def read_history(
        self,
        services: Services,
        principal: Principal,
        room_id: uuid.UUID,
        before: Annotated[
            int | None, Parameter(ge=1, le=MAX_SEQ, description="Only batches below this seq.")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> HistoryPage:
        """The room's batches, newest first, with author, time and a human summary."""
        await self._member(services, room_id, principal.user_id)
        async with services.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            return await page(conn, self.kind, room_id, before, limit)

    @get("/history/{seq:int}")
    async def read_state_at(
        self,
        services: Services,
        principal: Principal,
        room_id: uuid.UUID,
        seq: Annotated[int, Parameter(ge=0, le=MAX_SEQ)],
    ) -> StateAt:
        """The room's state at ``seq`` (within the kept history)."""
        await self._member(services, room_id, principal.user_id)
        try:
            async with (
                services.pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return StateAt(seq=seq, state=await state_at(conn, self.kind, room_id, seq))
        except HistoryError as exc:
            raise _problem(exc) from None

    @get("/versions")
    async def list_versions(
        self, services: Services, principal: Principal, room_id: uuid.UUID
    ) -> VersionList:
        """The room's named versions, newest first."""
        await self._member(services, room_id, principal.user_id)
        async with services.pool.acquire() as conn:
            return VersionList(versions=await versions(conn, room_id))

    @get("/versions/{version_id:uuid}")
    async def read_version(
        self, services: Services, principal: Principal, room_id: uuid.UUID, version_id: uuid.UUID
    ) -> VersionDetail:
        """A named version with the room's state it names."""
        await self._member(services, room_id, principal.user_id)
        async with services.pool.acquire() as conn:
            found = await version_state(conn, self.kind, room_id, version_id)
        if found is None:
            raise Problem(404, history.UNKNOWN_VERSION, "No such version in this room.")
        return VersionDetail(version=found[0], state=found[1])


class MashupHistoryController(_History):
    path = "/mashups/{room_id:uuid}"
    tags = ["mashups"]
    kind = MashupRoom()


class BlendHistoryController(_History):
    path = "/blends/{room_id:uuid}"
    tags = ["blends"]
    kind = BlendRoom()
