"""REST endpoints of the catalog: /tracks (HTTP only; the rules are in ``service``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from server.auth import Principal
from server.catalog import schemas, service
from server.catalog.common import CursorParam, Limit, query_text, unique_strings
from server.services import Services


class TrackController(Controller):
    path = "/tracks"
    tags = ["catalog"]

    @get("/")
    async def search_tracks(
        self,
        services: Services,
        principal: Principal,
        genre: Annotated[str | None, query_text(100)] = None,
        subgenre: Annotated[str | None, query_text(100)] = None,
        tempo_min: Annotated[int | None, Parameter(ge=20, le=400)] = None,
        tempo_max: Annotated[int | None, Parameter(ge=20, le=400)] = None,
        musical_key: Annotated[
            schemas.MusicalKey | None, Parameter(query="key", description="Musical key, e.g. C#.")
        ] = None,
        scale: schemas.Scale | None = None,
        mood: Annotated[
            list[str] | None, Parameter(description="Repeat for several moods.", max_items=32)
        ] = None,
        mood_match: Annotated[
            schemas.Match, Parameter(description="any: at least one mood; all: every mood.")
        ] = "any",
        tags: Annotated[list[str] | None, Parameter(max_items=64)] = None,
        tags_match: schemas.Match = "any",
        released_from: dt.date | None = None,
        released_to: dt.date | None = None,
        q: Annotated[str | None, query_text(200, "Free text over title and artist.")] = None,
        mine: Annotated[bool, Parameter(description="Only tracks I created.")] = False,
        sort: schemas.SortKey = "popularity",
        order: Annotated[
            schemas.SortOrder | None,
            Parameter(description="Default: popularity desc, release_date desc, tempo asc."),
        ] = None,
        limit: Limit = 20,
        cursor: CursorParam = None,
    ) -> schemas.TrackPage:
        """Search and filter the catalog; keyset pagination in a stable order."""
        query = schemas.TrackQuery(
            genre=genre,
            subgenre=subgenre,
            tempo_min=tempo_min,
            tempo_max=tempo_max,
            musical_key=musical_key,
            scale=scale,
            mood=tuple(unique_strings(mood, name="mood", max_items=32, max_length=255)),
            mood_match=mood_match,
            tags=tuple(unique_strings(tags, name="tags", max_items=64, max_length=100)),
            tags_match=tags_match,
            released_from=released_from,
            released_to=released_to,
            q=q.strip() or None if q is not None else None,
            created_by=principal.user_id if mine else None,
            sort=sort,
            order=order,
            limit=limit,
        )
        return await service.search(services, query, cursor)

    @post("/", status_code=HTTP_201_CREATED)
    async def create_track(
        self, services: Services, principal: Principal, data: schemas.TrackCreate
    ) -> schemas.TrackDetail:
        """Create a track with its children (artists and admins)."""
        return await service.create(services, principal, data)

    @get("/{track_id:uuid}")
    async def get_track(
        self, services: Services, principal: Principal, track_id: uuid.UUID
    ) -> schemas.TrackDetail:
        """A track with its sections, creators, instruments and samples."""
        return await service.read(services, principal, track_id)

    @patch("/{track_id:uuid}")
    async def update_track(
        self,
        services: Services,
        principal: Principal,
        track_id: uuid.UUID,
        data: schemas.TrackUpdate,
    ) -> schemas.TrackDetail:
        """Change a track (owner or admin); a child list given replaces that kind."""
        return await service.update(services, principal, track_id, data)

    @delete("/{track_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_track(
        self, services: Services, principal: Principal, track_id: uuid.UUID
    ) -> None:
        """Delete a track and its children (owner or admin)."""
        await service.delete(services, principal, track_id)

    @post("/{track_id:uuid}/play", status_code=200)
    async def play_track(
        self, services: Services, principal: Principal, track_id: uuid.UUID
    ) -> schemas.PlayCount:
        """Count one play: the track's total and the caller's own (a taste source for blends)."""
        return await service.play(services, principal.user_id, track_id)

    async def _add_child(
        self, services: Services, principal: Principal, track_id: uuid.UUID, kind: str, item: Any
    ) -> Any:
        return await service.add_child(services, principal, track_id, kind, item)

    @post("/{track_id:uuid}/sections", status_code=HTTP_201_CREATED)
    async def add_section(
        self, services: Services, principal: Principal, track_id: uuid.UUID, data: schemas.SectionIn
    ) -> schemas.Section:
        """Add an arrangement section (owner or admin)."""
        result: schemas.Section = await self._add_child(
            services, principal, track_id, "sections", data
        )
        return result

    @post("/{track_id:uuid}/creators", status_code=HTTP_201_CREATED)
    async def add_creator(
        self, services: Services, principal: Principal, track_id: uuid.UUID, data: schemas.CreatorIn
    ) -> schemas.Creator:
        """Add a creator; refused with 409 split_total_exceeded if splits would pass 100 %."""
        result: schemas.Creator = await self._add_child(
            services, principal, track_id, "creators", data
        )
        return result

    @post("/{track_id:uuid}/instruments", status_code=HTTP_201_CREATED)
    async def add_instrument(
        self,
        services: Services,
        principal: Principal,
        track_id: uuid.UUID,
        data: schemas.InstrumentIn,
    ) -> schemas.Instrument:
        """Add an instrument (owner or admin)."""
        result: schemas.Instrument = await self._add_child(
            services, principal, track_id, "instruments", data
        )
        return result

    @post("/{track_id:uuid}/samples", status_code=HTTP_201_CREATED)
    async def add_sample(
        self, services: Services, principal: Principal, track_id: uuid.UUID, data: schemas.SampleIn
    ) -> schemas.Sample:
        """Add a sample with its clearance (owner or admin)."""
        result: schemas.Sample = await self._add_child(
            services, principal, track_id, "samples", data
        )
        return result

    async def _delete_child(
        self,
        services: Services,
        principal: Principal,
        track_id: uuid.UUID,
        kind: str,
        child_id: uuid.UUID,
    ) -> None:
        await service.delete_child(services, principal, track_id, kind, child_id)

    @delete("/{track_id:uuid}/sections/{child_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_section(
        self, services: Services, principal: Principal, track_id: uuid.UUID, child_id: uuid.UUID
    ) -> None:
        """Remove a section (owner or admin)."""
        await self._delete_child(services, principal, track_id, "sections", child_id)

    @delete("/{track_id:uuid}/creators/{child_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_creator(
        self, services: Services, principal: Principal, track_id: uuid.UUID, child_id: uuid.UUID
    ) -> None:
        """Remove a creator (owner or admin)."""
        await self._delete_child(services, principal, track_id, "creators", child_id)

    @delete("/{track_id:uuid}/instruments/{child_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_instrument(
        self, services: Services, principal: Principal, track_id: uuid.UUID, child_id: uuid.UUID
    ) -> None:
        """Remove an instrument (owner or admin)."""
        await self._delete_child(services, principal, track_id, "instruments", child_id)

    @delete("/{track_id:uuid}/samples/{child_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_sample(
        self, services: Services, principal: Principal, track_id: uuid.UUID, child_id: uuid.UUID
    ) -> None:
        """Remove a sample (owner or admin)."""
        await self._delete_child(services, principal, track_id, "samples", child_id)
