"""REST endpoints for mashups (docs/mashups.md documents each one).

HTTP only: each handler takes the request apart and calls ``service`` (or the preview and
generation services, which own their renders and jobs); the share-code endpoints (rotate,
revoke, join) are ``service.ShareCodeController``, shared with blends.
"""

from __future__ import annotations

import uuid

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from server.auth import Principal
from server.mashups import room, schemas, service
from server.mashups.generation import GenerationService
from server.mashups.previews import PreviewService
from server.problems import Problem
from server.services import Services


def get_previews(state: State) -> PreviewService:
    previews: PreviewService = state.mashup_previews
    return previews


def get_generation(state: State) -> GenerationService:
    generation: GenerationService = state.mashup_generation
    return generation


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
        return await service.create(services, principal.user_id, data)

    @get("/")
    async def list_mashups(
        self, services: Services, principal: Principal
    ) -> list[schemas.MashupSummary]:
        """Mashups the caller is a member of, newest first."""
        return await service.summaries(services, principal.user_id)

    @get("/{mashup_id:uuid}")
    async def read_mashup(
        self, services: Services, principal: Principal, mashup_id: uuid.UUID
    ) -> schemas.MashupDetail:
        """A mashup with its members, inputs and the room's timeline (members only)."""
        return await service.detail(services, mashup_id, principal.user_id)

    @patch("/{mashup_id:uuid}")
    async def update_mashup(
        self,
        services: Services,
        principal: Principal,
        mashup_id: uuid.UUID,
        data: schemas.UpdateMashup,
    ) -> schemas.MashupDetail:
        """Rename the mashup or change its target duration (owner only)."""
        return await service.update(services, mashup_id, principal.user_id, data)

    @delete("/{mashup_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_mashup(
        self,
        services: Services,
        principal: Principal,
        previews: PreviewService,
        mashup_id: uuid.UUID,
    ) -> None:
        """Delete the mashup, its room and its stored previews (owner only)."""
        await service.delete(services, previews, mashup_id, principal.user_id)

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
        return await service.set_role(services, mashup_id, principal.user_id, user_id, data.role)

    @delete("/{mashup_id:uuid}/members/{user_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_member(
        self, services: Services, principal: Principal, mashup_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """Remove a member (owner), or leave (a member removing themselves).

        Their input tracks leave with them, and so do the clips cut from those tracks.
        """
        await service.remove_member(services, mashup_id, principal.user_id, user_id)

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
        return await service.add_input(
            services, mashup_id, principal.user_id, data.uploaded_track_id
        )

    @delete("/{mashup_id:uuid}/inputs/{track_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_input(
        self, services: Services, principal: Principal, mashup_id: uuid.UUID, track_id: uuid.UUID
    ) -> None:
        """Withdraw an input (its uploader, or the owner); clips cut from it leave the timeline."""
        await service.remove_input(services, mashup_id, principal.user_id, track_id)

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
        await service.require_member(services, mashup_id, principal.user_id)
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
        await service.require_member(services, mashup_id, principal.user_id)
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
        await service.require_editor(services, mashup_id, principal.user_id)
        return await previews.export(mashup_id, principal.user_id)

    @get("/{mashup_id:uuid}/export", media_type="audio/flac")
    async def read_export(
        self,
        services: Services,
        principal: Principal,
        previews: PreviewService,
        mashup_id: uuid.UUID,
    ) -> Response[bytes]:
        """The latest completed export (members only)."""
        data = await service.read_export(services, previews, mashup_id, principal.user_id)
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
