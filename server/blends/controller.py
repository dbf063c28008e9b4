"""REST endpoints for blends and taste sources (docs/blends.md documents each one).

HTTP only: each handler takes the request apart and calls ``service``; the share-code
endpoints (rotate, revoke, join) are ``service.ShareCodeController``, shared with mashups.
"""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from server.auth import Principal
from server.blends import schemas, service
from server.blends.generation import BlendJobs
from server.services import Services


def get_jobs(state: State) -> BlendJobs:
    jobs: BlendJobs = state.blend_jobs
    return jobs


class BlendController(Controller):
    path = "/blends"
    tags = ["blends"]
    dependencies = {"jobs": Provide(get_jobs, sync_to_thread=False)}

    @post("/")
    async def create_blend(
        self, services: Services, principal: Principal, jobs: BlendJobs, data: schemas.CreateBlend
    ) -> schemas.BlendDetail:
        """Create a blend; the caller is its owner and first member, with a fresh share code."""
        return await service.create(services, jobs, principal.user_id, data)

    @get("/")
    async def list_blends(
        self, services: Services, principal: Principal
    ) -> list[schemas.BlendSummary]:
        """Blends the caller belongs to or is invited to, newest first."""
        return await service.summaries(services, principal.user_id)

    @get("/{blend_id:uuid}")
    async def read_blend(
        self, services: Services, principal: Principal, blend_id: uuid.UUID
    ) -> schemas.BlendDetail:
        """A blend with its members, woven playlist and taste match (members and invitees)."""
        return await service.detail(services, blend_id, principal.user_id)

    @patch("/{blend_id:uuid}")
    async def update_blend(
        self,
        services: Services,
        principal: Principal,
        jobs: BlendJobs,
        blend_id: uuid.UUID,
        data: schemas.UpdateBlend,
    ) -> schemas.BlendDetail:
        """Rename the blend or change its settings (owner only)."""
        return await service.update(services, jobs, blend_id, principal.user_id, data)

    @delete("/{blend_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_blend(
        self, services: Services, principal: Principal, blend_id: uuid.UUID
    ) -> None:
        """Delete the blend, its playlist and its room (owner only)."""
        await service.delete(services, blend_id, principal.user_id)

    # ------------------------------------------------------------------ members

    @post("/{blend_id:uuid}/invites", status_code=201)
    async def invite_member(
        self,
        services: Services,
        principal: Principal,
        blend_id: uuid.UUID,
        data: schemas.InviteMember,
    ) -> schemas.Member:
        """Invite a user by id (owner only); they appear as pending until they accept."""
        return await service.invite(services, blend_id, principal.user_id, data.user_id)

    @post("/{blend_id:uuid}/accept", status_code=200)
    async def accept_invite(
        self, services: Services, principal: Principal, jobs: BlendJobs, blend_id: uuid.UUID
    ) -> schemas.BlendDetail:
        """Accept an invitation."""
        return await service.accept_invite(services, jobs, blend_id, principal.user_id)

    @post("/{blend_id:uuid}/decline", status_code=HTTP_204_NO_CONTENT)
    async def decline_invite(
        self, services: Services, principal: Principal, blend_id: uuid.UUID
    ) -> None:
        """Decline an invitation (only a pending one)."""
        await service.decline_invite(services, blend_id, principal.user_id)

    @post("/{blend_id:uuid}/leave", status_code=HTTP_204_NO_CONTENT)
    async def leave_blend(
        self, services: Services, principal: Principal, jobs: BlendJobs, blend_id: uuid.UUID
    ) -> None:
        """Leave a blend (the owner deletes it instead)."""
        await service.leave(services, jobs, blend_id, principal.user_id)

    @delete("/{blend_id:uuid}/members/{user_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_member(
        self,
        services: Services,
        principal: Principal,
        jobs: BlendJobs,
        blend_id: uuid.UUID,
        user_id: uuid.UUID,
    ) -> None:
        """Remove a member or withdraw an invitation (owner only)."""
        await service.remove_member(services, jobs, blend_id, principal.user_id, user_id)

    @post("/{blend_id:uuid}/regenerate", status_code=HTTP_202_ACCEPTED)
    async def regenerate(
        self, services: Services, principal: Principal, jobs: BlendJobs, blend_id: uuid.UUID
    ) -> schemas.Regeneration:
        """Weave the playlist again now (any member)."""
        return await service.regenerate(services, jobs, blend_id, principal.user_id)


class TasteController(Controller):
    path = "/taste"
    tags = ["blends"]
    dependencies = {"jobs": Provide(get_jobs, sync_to_thread=False)}

    @get("/connections")
    async def list_connections(
        self, services: Services, principal: Principal
    ) -> list[schemas.Connection]:
        """The caller's provider connections (tokens are never returned)."""
        return await service.connections(services, principal.user_id)

    @put("/connections/{provider:str}")
    async def connect_provider(
        self,
        services: Services,
        principal: Principal,
        provider: str,
        data: schemas.ConnectProvider,
    ) -> schemas.Connection:
        """Store (or replace) a provider connection; its tokens are encrypted at rest."""
        return await service.connect(services, principal.user_id, provider, data)

    @delete("/connections/{provider:str}", status_code=HTTP_204_NO_CONTENT)
    async def disconnect_provider(
        self, services: Services, principal: Principal, jobs: BlendJobs, provider: str
    ) -> None:
        """Forget a connection and its imported top tracks."""
        await service.disconnect(services, jobs, principal.user_id, provider)

    @put("/connections/{provider:str}/top-tracks/{time_range:str}")
    async def import_top_tracks(
        self,
        services: Services,
        principal: Principal,
        jobs: BlendJobs,
        provider: str,
        time_range: str,
        data: schemas.ImportTopTracks,
    ) -> list[schemas.TopTrack]:
        """Replace the caller's top tracks for one time range (best first)."""
        return await service.import_top_tracks(
            services, jobs, principal.user_id, provider, time_range, data
        )

    @get("/connections/{provider:str}/top-tracks/{time_range:str}")
    async def read_top_tracks(
        self, services: Services, principal: Principal, provider: str, time_range: str
    ) -> list[schemas.TopTrack]:
        return await service.top_tracks(services, principal.user_id, provider, time_range)

    @get("/tracks")
    async def my_taste(self, services: Services, principal: Principal) -> list[schemas.TasteTrack]:
        """The caller's taste as blends see it: merged songs, best-loved first."""
        return await service.my_taste(services, principal.user_id)
