"""REST endpoints for mashups (docs/mashups.md documents each one)."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from rooms.store import ensure_room
from server.auth import Principal
from server.mashups import live, queries, room, schemas
from server.mashups.generation import GenerationService
from server.mashups.previews import PreviewService
from server.mashups.service import MAX_INPUTS, detail
from server.problems import Problem
from server.services import Services
from server.share_codes import store


def get_previews(state: State) -> PreviewService:
    service: PreviewService = state.mashup_previews
    return service


def get_generation(state: State) -> GenerationService:
    service: GenerationService = state.mashup_generation
    return service


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise Problem(400, "invalid_request", "The name must not be blank.")
    return cleaned


class MashupController(Controller):
    path = "/mashups"
    tags = ["mashups"]
    dependencies = {
        "previews": Provide(get_previews, sync_to_thread=False),
        "generation": Provide(get_generation, sync_to_thread=False),
    }

    @post("/")
    async def create_mashup(
        self, services: Services, principal: Principal, data: schemas.CreateMashup
    ) -> schemas.MashupDetail:
        """Create a mashup and its room; the caller is its owner, with a fresh share code."""
        name = _clean_name(data.name)
        async with services.pool.acquire() as conn, conn.transaction():
            mashup_id = await conn.fetchval(
                "INSERT INTO mashups (user_id, name, target_duration_seconds)"
                " VALUES ($1, $2, $3) RETURNING id",
                principal.user_id,
                name,
                data.target_duration_seconds,
            )
            await conn.execute(
                "INSERT INTO mashup_members (mashup_id, user_id, role) VALUES ($1, $2, 'owner')",
                mashup_id,
                principal.user_id,
            )
            await store.issue(conn, "mashups", mashup_id, services.settings.mashup_share_code_days)
            await ensure_room(conn, room.KIND, mashup_id)
        await live.publish_sync(services, mashup_id)
        return await detail(services, mashup_id, principal.user_id)

    @get("/")
    async def list_mashups(
        self, services: Services, principal: Principal
    ) -> list[schemas.MashupSummary]:
        """Mashups the caller is a member of, newest first."""
        async with services.pool.acquire() as conn:
            return await queries.summaries(conn, principal.user_id)

    @get("/{mashup_id:uuid}")
    async def read_mashup(
        self, services: Services, principal: Principal, mashup_id: uuid.UUID
    ) -> schemas.MashupDetail:
        """A mashup with its members, inputs and the room's timeline (members only)."""
        return await detail(services, mashup_id, principal.user_id)

    @patch("/{mashup_id:uuid}")
    async def update_mashup(
        self,
        services: Services,
        principal: Principal,
        mashup_id: uuid.UUID,
        data: schemas.UpdateMashup,
    ) -> schemas.MashupDetail:
        """Rename the mashup or change its target duration (owner only)."""
        name = _clean_name(data.name) if data.name is not None else None
        async with services.pool.acquire() as conn, conn.transaction():
            await queries.require_owner(conn, mashup_id, principal.user_id, lock=True)
            await conn.execute(
                "UPDATE mashups SET name = coalesce($2, name),"
                " target_duration_seconds = coalesce($3, target_duration_seconds)"
                " WHERE id = $1",
                mashup_id,
                name,
                data.target_duration_seconds,
            )
            await queries.touch(conn, mashup_id)
        await live.publish_sync(services, mashup_id)
        return await detail(services, mashup_id, principal.user_id)

    @delete("/{mashup_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_mashup(
        self,
        services: Services,
        principal: Principal,
        previews: PreviewService,
        mashup_id: uuid.UUID,
    ) -> None:
        """Delete the mashup, its room and its stored previews (owner only)."""
        async with services.pool.acquire() as conn:
            await queries.require_owner(conn, mashup_id, principal.user_id)
        # The previews to delete (a preview announced after this read stays behind).
        found = await live.read_room(services, mashup_id)
        async with services.pool.acquire() as conn, conn.transaction():
            await queries.require_owner(conn, mashup_id, principal.user_id, lock=True)
            # The trigger deletes the room (and its log and snapshot) with the row.
            output = await conn.fetchval(
                "DELETE FROM mashups WHERE id = $1 RETURNING output_storage_key", mashup_id
            )
        await live.room_deleted(services, mashup_id)
        if output:
            await previews.delete_key(output)
        for preview in found[1].previews if found else []:
            await previews.delete(mashup_id, preview.id)

    # ------------------------------------------------------------------ members

    @put("/{mashup_id:uuid}/members/{user_id:uuid}")
    async def set_member_role(
        self,
        services: Services,
        principal: Principal,
        mashup_id: uuid.UUID,
        user_id: uuid.UUID,
        data: schemas.SetRole,
    ) -> schemas.Member:
        """Make a member an editor or a viewer (owner only; the owner's role is fixed)."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await queries.require_owner(conn, mashup_id, principal.user_id, lock=True)
                if user_id == principal.user_id:
                    raise Problem(409, "owner_role", "The owner's role cannot change.")
                changed = await conn.fetchval(
                    "UPDATE mashup_members SET role = $3::mashup_role"
                    " WHERE mashup_id = $1 AND user_id = $2 RETURNING id",
                    mashup_id,
                    user_id,
                    data.role,
                )
                if changed is None:
                    raise Problem(404, "member_not_found", "That user is not in this mashup.")
                await queries.touch(conn, mashup_id)
                members = await queries.members(conn, mashup_id)
        await live.publish_sync(services, mashup_id)
        await live.membership_changed(services, mashup_id, user_id)
        return next(m for m in members if m.user_id == user_id)

    @delete("/{mashup_id:uuid}/members/{user_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_member(
        self, services: Services, principal: Principal, mashup_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """Remove a member (owner), or leave (a member removing themselves).

        Their input tracks leave with them, and so do the clips cut from those tracks.
        """
        async with services.pool.acquire() as conn, conn.transaction():
            found = await queries.standing(conn, mashup_id, principal.user_id, lock=True)
            if user_id == principal.user_id:
                if found.role == "owner":
                    raise Problem(
                        409, "owner_cannot_leave", "The owner cannot leave; delete it instead."
                    )
            elif found.role != "owner":
                raise Problem(403, "not_owner", "Only the mashup's owner may do this.")
            gone = await conn.fetchval(
                "DELETE FROM mashup_members WHERE mashup_id = $1 AND user_id = $2 RETURNING id",
                mashup_id,
                user_id,
            )
            if gone is None:
                raise Problem(404, "member_not_found", "That user is not in this mashup.")
            await conn.execute(
                "DELETE FROM mashup_input_tracks i USING uploaded_tracks t"
                " WHERE i.mashup_id = $1 AND t.id = i.uploaded_track_id AND t.user_id = $2",
                mashup_id,
                user_id,
            )
            await queries.touch(conn, mashup_id)
        await live.publish_sync(services, mashup_id)
        await live.membership_changed(services, mashup_id, user_id)

    # ------------------------------------------------------------------ input tracks

    @post("/{mashup_id:uuid}/inputs", status_code=201)
    async def add_input(
        self,
        services: Services,
        principal: Principal,
        mashup_id: uuid.UUID,
        data: schemas.AddInput,
    ) -> schemas.Input:
        """Offer one of the caller's uploaded, analysed tracks to the mashup (owner, editors)."""
        track_id = data.uploaded_track_id
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await queries.require_editor(conn, mashup_id, principal.user_id, lock=True)
                track = await conn.fetchrow(
                    "SELECT upload_status::text AS upload, analysis_status::text AS analysis"
                    " FROM uploaded_tracks WHERE id = $1 AND user_id = $2",
                    track_id,
                    principal.user_id,
                )
                if track is None:
                    raise Problem(404, "track_not_found", "No such upload of yours.")
                if track["upload"] != "uploaded" or track["analysis"] != "completed":
                    raise Problem(
                        409,
                        "track_not_ready",
                        "The upload is not stored and analysed yet (or it failed).",
                    )
                count = await conn.fetchval(
                    "SELECT count(*) FROM mashup_input_tracks WHERE mashup_id = $1", mashup_id
                )
                if count >= MAX_INPUTS:
                    raise Problem(
                        409, "too_many_inputs", f"A mashup has at most {MAX_INPUTS} input tracks."
                    )
                added = await conn.fetchval(
                    "INSERT INTO mashup_input_tracks (mashup_id, uploaded_track_id)"
                    " VALUES ($1, $2) ON CONFLICT (mashup_id, uploaded_track_id) DO NOTHING"
                    " RETURNING id",
                    mashup_id,
                    track_id,
                )
                if added is None:
                    raise Problem(409, "already_input", "That track is already an input.")
                await queries.touch(conn, mashup_id)
                items = await queries.inputs(conn, mashup_id)
        await live.publish_sync(services, mashup_id)
        return next(i for i in items if i.uploaded_track_id == track_id)

    @delete("/{mashup_id:uuid}/inputs/{track_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_input(
        self, services: Services, principal: Principal, mashup_id: uuid.UUID, track_id: uuid.UUID
    ) -> None:
        """Withdraw an input (its uploader, or the owner); clips cut from it leave the timeline."""
        async with services.pool.acquire() as conn, conn.transaction():
            found = await queries.standing(conn, mashup_id, principal.user_id, lock=True)
            uploader = await conn.fetchval(
                "SELECT t.user_id FROM mashup_input_tracks i"
                " JOIN uploaded_tracks t ON t.id = i.uploaded_track_id"
                " WHERE i.mashup_id = $1 AND i.uploaded_track_id = $2",
                mashup_id,
                track_id,
            )
            if uploader is None:
                raise Problem(404, "input_not_found", "That track is not an input.")
            if uploader != principal.user_id and found.role != "owner":
                raise Problem(
                    403, "forbidden", "Only the track's uploader or the owner may remove it."
                )
            await conn.execute(
                "DELETE FROM mashup_input_tracks WHERE mashup_id = $1 AND uploaded_track_id = $2",
                mashup_id,
                track_id,
            )
            await queries.touch(conn, mashup_id)
        await live.publish_sync(services, mashup_id)

    # ------------------------------------------------------------------ previews

    @post("/{mashup_id:uuid}/previews", status_code=HTTP_202_ACCEPTED)
    async def request_preview(
        self,
        services: Services,
        principal: Principal,
        previews: PreviewService,
        mashup_id: uuid.UUID,
        data: schemas.PreviewWindow,
    ) -> schemas.PreviewAccepted:
        """Render a window of the room's current timeline (any member); the room announces
        ``preview_started`` now and ``preview_ready`` (with the URL) or ``preview_failed``."""
        limit = services.settings.mashup_preview_max_seconds
        async with services.pool.acquire() as conn:
            await queries.standing(conn, mashup_id, principal.user_id)
        if data.duration_seconds > limit:
            raise Problem(400, "window_too_long", f"A preview lasts at most {limit:g} seconds.")
        return await previews.request(mashup_id, principal.user_id, data)

    @get("/{mashup_id:uuid}/previews/{preview_id:uuid}", media_type="audio/mpeg")
    async def read_preview(
        self,
        services: Services,
        principal: Principal,
        previews: PreviewService,
        mashup_id: uuid.UUID,
        preview_id: uuid.UUID,
    ) -> Response[bytes]:
        """The audio of a rendered preview (members only)."""
        async with services.pool.acquire() as conn:
            await queries.standing(conn, mashup_id, principal.user_id)
        found = await previews.read(mashup_id, preview_id)
        if found is None:
            raise Problem(404, "preview_not_found", "No such preview (yet, or any more).")
        data, mime_type = found
        return Response(
            data,
            media_type=mime_type,
            headers={"Cache-Control": "private, max-age=86400, immutable"},
        )

    # ------------------------------------------------------------------ export

    @post("/{mashup_id:uuid}/export", status_code=HTTP_202_ACCEPTED)
    async def request_export(
        self,
        services: Services,
        principal: Principal,
        previews: PreviewService,
        mashup_id: uuid.UUID,
    ) -> room.Export:
        """Render the whole mashup in high quality (owner, editors); the room announces
        ``export`` with its progress, and the result is served at ``/mashups/{id}/export``."""
        async with services.pool.acquire() as conn:
            await queries.require_editor(conn, mashup_id, principal.user_id)
        return await previews.export(mashup_id, principal.user_id)

    @get("/{mashup_id:uuid}/export", media_type="audio/flac")
    async def read_export(
        self,
        services: Services,
        principal: Principal,
        previews: PreviewService,
        mashup_id: uuid.UUID,
    ) -> Response[bytes]:
        """The latest completed export (members only); counts a download."""
        async with services.pool.acquire() as conn:
            await queries.standing(conn, mashup_id, principal.user_id)
            key = await conn.fetchval(
                "SELECT output_storage_key FROM mashups WHERE id = $1", mashup_id
            )
        data = await previews.read_export(key) if key else None
        if data is None:
            raise Problem(404, "export_not_found", "The mashup has not been exported yet.")
        await services.pool.execute(
            "UPDATE mashups SET download_count = download_count + 1 WHERE id = $1", mashup_id
        )
        return Response(
            data,
            media_type="audio/flac",
            headers={"Cache-Control": "private, no-cache"},
        )

    # ------------------------------------------------------------------ generation

    @post("/{mashup_id:uuid}/generate", status_code=HTTP_202_ACCEPTED)
    async def generate(
        self,
        principal: Principal,
        generation: GenerationService,
        mashup_id: uuid.UUID,
        data: schemas.GenerateRequest | None = None,
    ) -> schemas.GenerationAccepted:
        """Generate a draft timeline from the inputs (owner, editors). The room reports
        ``generation`` progress, then the draft arrives as one ``generated`` batch, then the
        rendered output (``/mashups/{id}/export``). See docs/mashups.md."""
        return await generation.request(
            mashup_id, principal.user_id, data or schemas.GenerateRequest()
        )
