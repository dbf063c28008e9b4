"""REST endpoints of the catalog: /tracks."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from server.auth import Principal
from server.catalog import queries, schemas
from server.catalog.common import CursorParam, Limit, query_text, unique_strings
from server.problems import Problem
from server.services import Services

EDITOR_ROLES = ("artist", "admin")


def _may_edit(principal: Principal, owner: uuid.UUID | None) -> None:
    if principal.has_role("admin"):
        return
    if owner is None or owner != principal.user_id or not principal.has_role("artist"):
        raise Problem(403, "forbidden", "Only the track's owner or an admin may change it.")


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
        return await queries.search(services.pool, query, cursor)

    @post("/", status_code=HTTP_201_CREATED)
    async def create_track(
        self, services: Services, principal: Principal, data: schemas.TrackCreate
    ) -> schemas.TrackDetail:
        """Create a track with its children (artists and admins)."""
        if not principal.has_role(*EDITOR_ROLES):
            raise Problem(403, "forbidden", "Only artists and admins may add tracks.")
        async with services.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    track_id = await queries.insert_track(conn, principal.user_id, data)
                    await queries.check_splits(conn, track_id)
            except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError) as exc:
                raise queries.integrity_problem(exc) from None
            return await queries.detail(conn, track_id, show_contacts=True)

    @get("/{track_id:uuid}")
    async def get_track(
        self, services: Services, principal: Principal, track_id: uuid.UUID
    ) -> schemas.TrackDetail:
        """A track with its sections, creators, instruments and samples."""
        async with services.pool.acquire() as conn:
            track = await queries.detail(conn, track_id, show_contacts=True)
        if not principal.has_role("admin") and track.created_by != principal.user_id:
            for creator in track.creators:
                creator.contact_email = None
                creator.contact_phone = None
        return track

    @patch("/{track_id:uuid}")
    async def update_track(
        self,
        services: Services,
        principal: Principal,
        track_id: uuid.UUID,
        data: schemas.TrackUpdate,
    ) -> schemas.TrackDetail:
        """Change a track (owner or admin); a child list given replaces that kind."""
        if data.popularity_score is not msgspec.UNSET and not principal.has_role("admin"):
            raise Problem(403, "forbidden", "Only admins set popularity_score.")
        async with services.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    _may_edit(principal, await queries.lock_track(conn, track_id))
                    await queries.update_track(conn, track_id, data)
                    await queries.check_splits(conn, track_id)
            except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError) as exc:
                raise queries.integrity_problem(exc) from None
            return await queries.detail(conn, track_id, show_contacts=True)

    @delete("/{track_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_track(
        self, services: Services, principal: Principal, track_id: uuid.UUID
    ) -> None:
        """Delete a track and its children (owner or admin)."""
        async with services.pool.acquire() as conn, conn.transaction():
            _may_edit(principal, await queries.lock_track(conn, track_id))
            await conn.execute("DELETE FROM tracks WHERE id = $1", track_id)

    @post("/{track_id:uuid}/play", status_code=200)
    async def play_track(
        self, services: Services, principal: Principal, track_id: uuid.UUID
    ) -> schemas.PlayCount:
        """Count one play: the track's total and the caller's own (a taste source for blends)."""
        count = await queries.count_play(services.pool, principal.user_id, track_id)
        if count is None:
            raise Problem(404, "not_found", "No such track.")
        return schemas.PlayCount(id=track_id, play_count=count)

    async def _add_child(
        self, services: Services, principal: Principal, track_id: uuid.UUID, kind: str, item: Any
    ) -> Any:
        async with services.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    _may_edit(principal, await queries.lock_track(conn, track_id))
                    (child_id,) = await queries.insert_children(conn, kind, track_id, [item])
                    await queries.check_splits(conn, track_id)
                    await conn.execute(
                        "UPDATE tracks SET updated_at = now() WHERE id = $1", track_id
                    )
            except asyncpg.CheckViolationError as exc:
                raise queries.integrity_problem(exc) from None
            return await queries.fetch_child(conn, kind, child_id)

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
        child = queries.CHILDREN[kind]
        async with services.pool.acquire() as conn, conn.transaction():
            _may_edit(principal, await queries.lock_track(conn, track_id))
            deleted = await conn.fetchval(
                f"DELETE FROM {child.table} WHERE id = $1 AND track_id = $2 RETURNING id",
                child_id,
                track_id,
            )
            if deleted is None:
                raise Problem(404, "not_found", f"No such {kind[:-1]} on this track.")
            await conn.execute("UPDATE tracks SET updated_at = now() WHERE id = $1", track_id)

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
