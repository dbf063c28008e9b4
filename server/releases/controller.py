"""REST endpoints of releases: /releases (HTTP only; the rules are in ``service``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from litestar import Controller, delete, get, patch, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from server.auth import Principal
from server.catalog.common import CursorParam, Limit
from server.releases import schemas, service
from server.services import Services


class ReleaseController(Controller):
    path = "/releases"
    tags = ["releases"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create_release(
        self, services: Services, principal: Principal, data: schemas.ReleaseCreate
    ) -> schemas.Release:
        """Create a draft release (artists)."""
        return await service.create(services, principal, data)

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
        return await service.page(services, principal, which, limit, cursor)

    @get("/{release_id:uuid}")
    async def get_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """A release with its tracks (owner, admins, or anyone once published)."""
        return await service.read(services, principal, release_id)

    @patch("/{release_id:uuid}")
    async def update_release(
        self,
        services: Services,
        principal: Principal,
        release_id: uuid.UUID,
        data: schemas.ReleaseUpdate,
    ) -> schemas.Release:
        """Change a draft's title, genre or cover art (URL)."""
        return await service.update(services, principal, release_id, data)

    @delete("/{release_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> None:
        """Delete a draft or rejected release (owner)."""
        await service.delete(services, principal, release_id)

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
        return await service.add_track(services, principal, release_id, data)

    @delete("/{release_id:uuid}/tracks/{track_id:uuid}", status_code=200)
    async def remove_release_track(
        self, services: Services, principal: Principal, release_id: uuid.UUID, track_id: uuid.UUID
    ) -> schemas.Release:
        """Remove a track from a draft; later tracks move up one place."""
        return await service.remove_track(services, principal, release_id, track_id)

    @put("/{release_id:uuid}/tracks/order")
    async def reorder_release_tracks(
        self,
        services: Services,
        principal: Principal,
        release_id: uuid.UUID,
        data: schemas.TrackOrder,
    ) -> schemas.Release:
        """Set the order of all tracks of a draft (numbers become 1..n)."""
        return await service.reorder(services, principal, release_id, data.track_ids)

    # ------------------------------------------------------------------ lifecycle

    @post("/{release_id:uuid}/submit", status_code=200)
    async def submit_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """Submit a draft for review (needs a track and cover art). If a track's upload is
        still being analysed the release waits in 'processing' and moves on by itself."""
        return await service.transition(services, principal, release_id, "submit")

    @post("/{release_id:uuid}/withdraw", status_code=200)
    async def withdraw_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """Take a release out of review, back to draft (owner)."""
        return await service.transition(services, principal, release_id, "withdraw")

    @post("/{release_id:uuid}/approve", status_code=200)
    async def approve_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """Publish a release pending review (admins)."""
        return await service.transition(services, principal, release_id, "approve")

    @post("/{release_id:uuid}/reject", status_code=200)
    async def reject_release(
        self,
        services: Services,
        principal: Principal,
        release_id: uuid.UUID,
        data: schemas.Rejection,
    ) -> schemas.Release:
        """Reject a release pending review, with a reason (admins)."""
        return await service.transition(services, principal, release_id, "reject", data.reason)

    @post("/{release_id:uuid}/reopen", status_code=200)
    async def reopen_release(
        self, services: Services, principal: Principal, release_id: uuid.UUID
    ) -> schemas.Release:
        """Return a rejected release to draft so the artist can fix it (owner)."""
        return await service.transition(services, principal, release_id, "reopen")
