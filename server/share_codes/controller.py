"""The one share-code controller: rotate, revoke and join, for blends and mashups alike.

A domain describes what differs (``Shareable``: its table, its default lifetime, who may
manage the code, how a user is admitted and what the answer is) and mounts
``share_code_controller(...)`` beside its own controller. The HTTP steps, the transaction and
the guess limit (``guard``) are written once, here.

The handlers read the row id from the path (``/blends/{blend_id}`` or
``/mashups/{mashup_id}``) rather than from a parameter of their own, so that one function
serves both paths and the OpenAPI document names each path's parameter as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol, get_type_hints

from litestar import Controller, Request, delete, post
from litestar.datastructures import State
from litestar.status_codes import HTTP_204_NO_CONTENT

from db.pool import Connection
from server.auth import Principal, client_address
from server.problems import Problem
from server.services import Services
from server.settings import Settings
from server.share_codes import codes, guard
from server.share_codes import repository as store
from server.share_codes.schemas import JoinByCode, RotateShareCode, ShareCode


class Full(Exception):
    """Raised by ``Shareable.admit`` when a right code meets a full blend or mashup: the
    attempt is not a guess, so its guard tokens are given back before ``problem`` is
    answered."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class Shareable(Protocol):
    """What a domain with share codes tells the controller; ``answer``'s return type is the
    join's answer type in the OpenAPI document."""

    table: store.Table  # also the path: /blends, /mashups

    def default_days(self, settings: Settings) -> int:
        """The lifetime of a new code when the request names none."""
        ...

    async def admit(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Make ``user_id`` a member, in the join's transaction (the row is locked). True when
        they were not one before; raise ``Full`` when there is no room."""
        ...

    async def require_owner(self, conn: Connection, row_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Lock the row; 404 (not a member) or 403 (not the owner) unless ``user_id`` owns it."""
        ...

    async def announce(self, state: State, row_id: uuid.UUID) -> None:
        """After a join that made a new member: tell the room (and whatever else follows)."""
        ...

    async def answer(self, services: Services, row_id: uuid.UUID, user_id: uuid.UUID) -> Any:
        """The join's answer, read after the commit."""
        ...


def _row_id(request: Request[Any, Any, Any], param: str) -> uuid.UUID:
    value: uuid.UUID = request.path_params[param]  # parsed by the route's ``:uuid``
    return value


def share_code_controller(resource: Shareable, param: str, join_name: str) -> type[Controller]:
    """The rotate, revoke and join endpoints of ``/{resource.table}``: ``param`` names the
    row id in the path, ``join_name`` keeps the join's operation id."""
    table = resource.table

    async def join(
        self: Controller,
        request: Request[Any, Any, Any],
        services: Services,
        principal: Principal,
        data: JoinByCode,
    ) -> Any:
        """Join with a share code (``Shareable.admit`` says as what)."""
        taken = await guard.take(services, client_address(request), principal.user_id)
        code = codes.parse(data.code)
        async with services.pool.acquire() as conn, conn.transaction():
            row_id = await store.row_for_code(conn, table, code) if code else None
            if row_id is None:
                raise store.invalid_share_code()
            try:
                new = await resource.admit(conn, row_id, principal.user_id)
            except Full as full:
                await guard.give_back(services, taken)
                raise full.problem from None
        await guard.give_back(services, taken)
        if new:
            await resource.announce(request.app.state, row_id)
        return await resource.answer(services, row_id, principal.user_id)

    # The operation id comes from the function's name, the answer's schema from its
    # annotation: both are the domain's (``join_blend`` answers a blend).
    join.__name__ = join.__qualname__ = join_name
    answer = get_type_hints(resource.answer)["return"]
    join.__annotations__ = {**join.__annotations__, "return": answer}
    joined: Callable[..., Any] = post("/join", status_code=200)(join)

    class ShareCodeController(Controller):
        path = f"/{table}"
        tags = [table]

        @post(f"/{{{param}:uuid}}/share-code", status_code=200)
        async def rotate_share_code(
            self,
            request: Request[Any, Any, Any],
            services: Services,
            principal: Principal,
            data: RotateShareCode | None = None,
        ) -> ShareCode:
            """Issue a new share code; the old one stops working at once (owner only)."""
            row_id = _row_id(request, param)
            days = (data.expires_in_days if data else None) or resource.default_days(
                services.settings
            )
            async with services.pool.acquire() as conn, conn.transaction():
                await resource.require_owner(conn, row_id, principal.user_id)
                return await store.issue(conn, table, row_id, days)

        @delete(f"/{{{param}:uuid}}/share-code", status_code=HTTP_204_NO_CONTENT)
        async def revoke_share_code(
            self, request: Request[Any, Any, Any], services: Services, principal: Principal
        ) -> None:
            """Revoke the share code: nobody can join by code until a new one is issued."""
            row_id = _row_id(request, param)
            async with services.pool.acquire() as conn, conn.transaction():
                await resource.require_owner(conn, row_id, principal.user_id)
                await store.revoke(conn, table, row_id)

        join_by_code = joined

    ShareCodeController.__name__ = ShareCodeController.__qualname__ = (
        f"{table.title()}ShareCodeController"
    )
    return ShareCodeController
