"""REST endpoints of playlists: /playlists (HTTP only; the rules are in ``service``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from server.auth import Principal
from server.catalog.common import CursorParam, Limit
from server.playlists import schemas, service
from server.services import Services


class PlaylistController(Controller):
    path = "/playlists"
    tags = ["playlists"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create_playlist(
        self, services: Services, principal: Principal, data: schemas.PlaylistCreate
    ) -> schemas.Playlist:
        """Create a playlist (private unless is_public)."""
        return await service.create(services, principal.user_id, data)

    @get("/")
    async def list_playlists(
        self,
        services: Services,
        principal: Principal,
        which: Annotated[
            Literal["mine", "public"],
            Parameter(
                query="scope",
                description="mine: owned or collaborating; public: everyone's public ones.",
            ),
        ] = "mine",
        limit: Limit = 20,
        cursor: CursorParam = None,
    ) -> schemas.PlaylistPage:
        """Playlists, newest first (without their tracks)."""
        return await service.page(services, principal.user_id, which, limit, cursor)

    @get("/{playlist_id:uuid}")
    async def get_playlist(
        self, services: Services, principal: Principal, playlist_id: uuid.UUID
    ) -> schemas.Playlist:
        """A playlist with its collaborators and tracks in order."""
        return await service.read(services, playlist_id, principal.user_id)

    @patch("/{playlist_id:uuid}")
    async def update_playlist(
        self,
        services: Services,
        principal: Principal,
        playlist_id: uuid.UUID,
        data: schemas.PlaylistUpdate,
    ) -> schemas.Playlist:
        """Rename, describe, make public/private or (non-)collaborative (owner)."""
        return await service.update(services, playlist_id, principal.user_id, data)

    @delete("/{playlist_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_playlist(
        self, services: Services, principal: Principal, playlist_id: uuid.UUID
    ) -> None:
        """Delete a playlist (owner)."""
        await service.delete(services, playlist_id, principal.user_id)

    # ------------------------------------------------------------------ collaborators

    @post("/{playlist_id:uuid}/collaborators", status_code=HTTP_201_CREATED)
    async def add_collaborator(
        self,
        services: Services,
        principal: Principal,
        playlist_id: uuid.UUID,
        data: schemas.CollaboratorAdd,
    ) -> schemas.Playlist:
        """Let another user edit the tracks (owner; the playlist must be collaborative)."""
        return await service.add_collaborator(
            services, playlist_id, principal.user_id, data.user_id
        )

    @delete("/{playlist_id:uuid}/collaborators/{user_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_collaborator(
        self, services: Services, principal: Principal, playlist_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """Remove a collaborator (owner), or leave a playlist (the collaborator)."""
        await service.remove_collaborator(services, playlist_id, principal.user_id, user_id)

    # ------------------------------------------------------------------ tracks

    @post("/{playlist_id:uuid}/tracks", status_code=HTTP_201_CREATED)
    async def add_playlist_track(
        self,
        services: Services,
        principal: Principal,
        playlist_id: uuid.UUID,
        data: schemas.PlaylistTrackAdd,
    ) -> schemas.Playlist:
        """Add a track (at the end, or at position); 409 if it is already there."""
        return await service.add_track(services, playlist_id, principal.user_id, data)

    @delete("/{playlist_id:uuid}/tracks/{track_id:uuid}", status_code=200)
    async def remove_playlist_track(
        self, services: Services, principal: Principal, playlist_id: uuid.UUID, track_id: uuid.UUID
    ) -> schemas.Playlist:
        """Remove a track; later tracks move up one place."""
        return await service.remove_track(services, playlist_id, principal.user_id, track_id)

    @patch("/{playlist_id:uuid}/tracks/{track_id:uuid}")
    async def move_playlist_track(
        self,
        services: Services,
        principal: Principal,
        playlist_id: uuid.UUID,
        track_id: uuid.UUID,
        data: schemas.PlaylistTrackMove,
    ) -> schemas.Playlist:
        """Move a track to another position (the others shift to make room)."""
        return await service.move_track(
            services, playlist_id, principal.user_id, track_id, data.position
        )
