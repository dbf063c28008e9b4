"""REST endpoints of releases: /releases."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from db.rows import returned
from server.auth import Principal
from server.catalog.common import (
    CursorParam,
    Limit,
    newest_first,
)
from server.ordering import RELEASE_TRACKS
from server.problems import Problem
from server.releases import lifecycle, queries, schemas
from server.services import Services

MAX_TRACKS = 100


def _invalid(exc: lifecycle.InvalidTransition) -> Problem:
    return Problem(409, "invalid_transition", str(exc))


async def _own_release(
    conn: Any, principal: Principal, release_id: uuid.UUID, *, editable: bool = True
) -> schemas.Release:
    """Lock the caller's own release; 404 if not visible, 403 if visible but not theirs,
    409 if ``editable`` and it is not a draft."""
    release = await queries.visible_release(
        conn, release_id, principal.user_id, principal.has_role("admin"), lock=True
    )
    if release.artist_id != principal.user_id:
        raise Problem(403, "forbidden", "Only the release's artist may change it.")
    if editable and release.status not in lifecycle.EDITABLE:
        raise Problem(
            409,
            "release_locked",
            f"The release is {release.status.replace('_', ' ')}; only drafts can be edited.",
        )
    return release


class ReleaseController(Controller):
    path = "/releases"
    tags = ["releases"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create_release(
        self, services: Services, principal: Principal, data: schemas.ReleaseCreate
    ) -> schemas.Release:
        """Create a draft release (artists)."""
        if not principal.has_role("artist"):
            raise Problem(403, "forbidden", "Only artists create releases.")
        row = returned(
            await services.pool.fetchrow(
                "INSERT INTO releases (artist_id, title, genre, cover_art_url)"
                " VALUES ($1, $2, $3, $4)"
                f" RETURNING {queries.RELEASE_COLUMNS.replace('r.', '')}",
                principal.user_id,
                data.title,
                data.genre,
                data.cover_art_url,
            )
        )
        return queries.release_from(row)

    @get("/")
    async def list_releases(
        self,
        services: Services,
        principal: Principal,
        which: Annotated[
            Literal["mine", "published", "review"],
            Parameter(
                query="scope", description="mine; published (everyone's); review (admins: pending)."
            ),
        ] = "mine",
        limit: Limit = 20,
        cursor: CursorParam = None,
    ) -> schemas.ReleasePage:
        """My releases, the published ones, or (admins) the review queue; newest first."""
        args: list[Any] = []
        if which == "mine":
            args.append(principal.user_id)
            where = "r.artist_id = $2"
        elif which == "published":
            where = "r.status = 'published'"
        else:
            if not principal.has_role("admin"):
                raise Problem(403, "forbidden", "The review queue is for admins.")
            where = "r.status = 'pending_review'"
        rows, next_cursor = await newest_first(
            services.pool,
            f"SELECT {queries.RELEASE_COLUMNS} FROM releases r",
            where,
            args,
            alias="r",
            limit=limit,
            cursor=cursor,
        )
        items = [queries.release_from(r) for r in rows]
        return schemas.ReleasePage(items=items, next_cursor=next_cursor)

    @get("/{release_id:uuid}")
    async def get_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """A release with its tracks (owner, admins, or anyone once published)."""
        async with services.pool.acquire() as conn:
            release = await queries.visible_release(
                conn, release_id, principal.user_id, principal.has_role("admin")
            )
            return await queries.with_tracks(conn, release)

    @patch("/{release_id:uuid}")
    async def update_release(
        self,
        services: Services,
        principal: Principal,
        release_id: uuid.UUID,
        data: schemas.ReleaseUpdate,
    ) -> schemas.Release:
        """Change a draft's title, genre or cover art (URL)."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await _own_release(conn, principal, release_id)
                fields = {
                    k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET
                }
                if fields:
                    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(fields))
                    await conn.execute(
                        f"UPDATE releases SET {sets}, updated_at = now() WHERE id = $1",
                        release_id,
                        *fields.values(),
                    )
            return await self._fresh(conn, principal, release_id)

    @delete("/{release_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> None:
        """Delete a draft or rejected release (owner)."""
        async with services.pool.acquire() as conn, conn.transaction():
            release = await _own_release(conn, principal, release_id, editable=False)
            if release.status not in ("draft", "rejected"):
                raise Problem(
                    409, "release_locked", "Only draft or rejected releases can be deleted."
                )
            await conn.execute("DELETE FROM releases WHERE id = $1", release_id)

    async def _fresh(
        self, conn: Any, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        release = await queries.visible_release(
            conn, release_id, principal.user_id, principal.has_role("admin")
        )
        return await queries.with_tracks(conn, release)

    # ------------------------------------------------------------------ tracks

    @post("/{release_id:uuid}/tracks", status_code=HTTP_201_CREATED)
    async def add_release_track(
        self,
        services: Services,
        principal: Principal,
        release_id: uuid.UUID,
        data: schemas.ReleaseTrackCreate,
    ) -> schemas.Release:
        """Add a track to a draft; 409 track_order_taken if that number is used."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await _own_release(conn, principal, release_id)
                count, last = returned(
                    await conn.fetchrow(
                        "SELECT count(*), coalesce(max(track_order), 0) FROM release_tracks"
                        " WHERE release_id = $1",
                        release_id,
                    )
                )
                if count >= MAX_TRACKS:
                    raise Problem(409, "too_many_tracks", f"At most {MAX_TRACKS} tracks.")
                duration = data.duration_seconds
                if data.upload_id is not None:
                    upload = await conn.fetchrow(
                        "SELECT duration_seconds::float8 AS d FROM uploaded_tracks"
                        " WHERE id = $1 AND user_id = $2",
                        data.upload_id,
                        principal.user_id,
                    )
                    if upload is None:
                        raise Problem(404, "not_found", "No such upload.")
                    duration = duration or upload["d"]
                if not duration:
                    raise Problem(
                        400, "invalid_request", "Give duration_seconds or an analysed upload_id."
                    )
                order = data.track_order or last + 1
                if order > 1000:
                    raise Problem(409, "too_many_tracks", "Track numbers stop at 1000.")
                try:
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
                except asyncpg.UniqueViolationError:
                    raise Problem(
                        409, "track_order_taken", f"The release already has a track {order}."
                    ) from None
                await conn.execute(
                    "UPDATE releases SET updated_at = now() WHERE id = $1", release_id
                )
            return await self._fresh(conn, principal, release_id)

    @delete("/{release_id:uuid}/tracks/{track_id:uuid}", status_code=200)
    async def remove_release_track(
        self, services: Services, principal: Principal, release_id: uuid.UUID, track_id: uuid.UUID
    ) -> schemas.Release:
        """Remove a track from a draft; later tracks move up one place."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await _own_release(conn, principal, release_id)
                order = await conn.fetchval(
                    "DELETE FROM release_tracks WHERE id = $1 AND release_id = $2"
                    " RETURNING track_order",
                    track_id,
                    release_id,
                )
                if order is None:
                    raise Problem(404, "not_found", "No such track on this release.")
                await RELEASE_TRACKS.close_gap(conn, release_id, order)
            return await self._fresh(conn, principal, release_id)

    @put("/{release_id:uuid}/tracks/order")
    async def reorder_release_tracks(
        self,
        services: Services,
        principal: Principal,
        release_id: uuid.UUID,
        data: schemas.TrackOrder,
    ) -> schemas.Release:
        """Set the order of all tracks of a draft (numbers become 1..n)."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await _own_release(conn, principal, release_id)
                current = {
                    r["id"]
                    for r in await conn.fetch(
                        "SELECT id FROM release_tracks WHERE release_id = $1", release_id
                    )
                }
                if (
                    len(data.track_ids) != len(set(data.track_ids))
                    or set(data.track_ids) != current
                ):
                    raise Problem(
                        409,
                        "invalid_order",
                        "List every track of the release exactly once.",
                    )
                await RELEASE_TRACKS.renumber(conn, release_id, data.track_ids)
                await conn.execute(
                    "UPDATE releases SET updated_at = now() WHERE id = $1", release_id
                )
            return await self._fresh(conn, principal, release_id)

    # ------------------------------------------------------------------ lifecycle

    async def _transition(
        self,
        services: Services,
        principal: Principal,
        release_id: uuid.UUID,
        action: lifecycle.Action,
        reason: str | None = None,
    ) -> schemas.Release:
        is_admin = principal.has_role("admin")
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                release = await queries.visible_release(
                    conn, release_id, principal.user_id, is_admin, lock=True
                )
                if action in lifecycle.ADMIN_ACTIONS:
                    if not is_admin:
                        raise Problem(403, "forbidden", "Only admins review releases.")
                elif release.artist_id != principal.user_id:
                    raise Problem(403, "forbidden", "Only the release's artist may do this.")
                try:
                    target = lifecycle.next_status(release.status, action)
                except lifecycle.InvalidTransition as exc:
                    raise _invalid(exc) from None
                if action == "submit":
                    target = await self._check_complete(conn, release)
                await conn.execute(
                    """
                    UPDATE releases SET status = $2::release_status, updated_at = now(),
                        submitted_at = CASE WHEN $2 IN ('pending_review', 'processing')
                                            THEN now() ELSE submitted_at END,
                        reviewed_at = CASE WHEN $3 THEN now() ELSE reviewed_at END,
                        reviewed_by = CASE WHEN $3 THEN $4 ELSE reviewed_by END,
                        rejection_reason = coalesce($5, rejection_reason)
                    WHERE id = $1
                    """,
                    release_id,
                    target,
                    action in lifecycle.ADMIN_ACTIONS,
                    principal.user_id,
                    reason,
                )
            return await self._fresh(conn, principal, release_id)

    async def _check_complete(self, conn: Any, release: schemas.Release) -> lifecycle.Status:
        missing = []
        tracks = await conn.fetchval(
            "SELECT count(*) FROM release_tracks WHERE release_id = $1", release.id
        )
        if tracks == 0:
            missing.append("at least one track")
        if not release.cover_art_url:
            missing.append("cover art")
        if missing:
            raise Problem(
                409,
                "release_incomplete",
                f"A release needs {' and '.join(missing)} before review.",
            )
        failed = await conn.fetchval(
            "SELECT count(*) FROM release_tracks rt JOIN uploaded_tracks u"
            " ON u.id = rt.uploaded_track_id"
            " WHERE rt.release_id = $1 AND u.upload_status = 'failed'",
            release.id,
        )
        if failed:
            raise Problem(409, "upload_failed", "A track's upload failed; retry or replace it.")
        waiting = await conn.fetchval(
            f"SELECT EXISTS ({queries.NOT_READY.replace('r.id', '$1')})", release.id
        )
        return "processing" if waiting else "pending_review"

    @post("/{release_id:uuid}/submit", status_code=200)
    async def submit_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """Submit a draft for review (needs a track and cover art). If a track's upload is
        still being analysed the release waits in 'processing' and moves on by itself."""
        return await self._transition(services, principal, release_id, "submit")

    @post("/{release_id:uuid}/withdraw", status_code=200)
    async def withdraw_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """Take a release out of review, back to draft (owner)."""
        return await self._transition(services, principal, release_id, "withdraw")

    @post("/{release_id:uuid}/approve", status_code=200)
    async def approve_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """Publish a release pending review (admins)."""
        return await self._transition(services, principal, release_id, "approve")

    @post("/{release_id:uuid}/reject", status_code=200)
    async def reject_release(
        self,
        services: Services,
        principal: Principal,
        release_id: uuid.UUID,
        data: schemas.Rejection,
    ) -> schemas.Release:
        """Reject a release pending review, with a reason (admins)."""
        return await self._transition(services, principal, release_id, "reject", data.reason)

    @post("/{release_id:uuid}/reopen", status_code=200)
    async def reopen_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """Return a rejected release to draft so the artist can fix it (owner)."""
        return await self._transition(services, principal, release_id, "reopen")
