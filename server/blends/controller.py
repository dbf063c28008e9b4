"""REST endpoints for blends and taste sources (docs/blends.md documents each one)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from rooms.store import ensure_room
from server.auth import Principal
from server.blends import live, queries, room, schemas, taste
from server.blends.crypto import TokenCipher
from server.blends.generation import BlendJobs
from server.blends.service import blend_full, changed
from server.blends.weave import merge_songs
from server.problems import Problem
from server.services import Services
from server.share_codes import store

PROVIDERS = ("spotify", "apple")
TIME_RANGES = ("short_term", "medium_term", "long_term")


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
        name = " ".join(data.name.split())
        if not name:
            raise Problem(400, "invalid_request", "The name must not be blank.")
        async with services.pool.acquire() as conn, conn.transaction():
            blend_id = await conn.fetchval(
                "INSERT INTO blends (created_by, name, blend_settings) VALUES ($1, $2, $3::jsonb)"
                " RETURNING id",
                principal.user_id,
                name,
                queries.encode_json(data.settings),
            )
            await conn.execute(
                "INSERT INTO blend_participants (blend_id, user_id, status, joined_at)"
                " VALUES ($1, $2, 'accepted', now())",
                blend_id,
                principal.user_id,
            )
            await store.issue(conn, "blends", blend_id, services.settings.blend_share_code_days)
            await ensure_room(conn, room.KIND, blend_id)
            detail = await queries.detail(conn, blend_id, principal.user_id)
        await changed(services, jobs, blend_id, with_name=True)
        return detail

    @get("/")
    async def list_blends(
        self, services: Services, principal: Principal
    ) -> list[schemas.BlendSummary]:
        """Blends the caller belongs to or is invited to, newest first."""
        async with services.pool.acquire() as conn:
            found = await queries.summaries(conn, principal.user_id)
        return [await live.with_room_name(services, summary) for summary in found]

    @get("/{blend_id:uuid}")
    async def read_blend(
        self, services: Services, principal: Principal, blend_id: uuid.UUID
    ) -> schemas.BlendDetail:
        """A blend with its members, woven playlist and taste match (members and invitees)."""
        async with services.pool.acquire() as conn:
            detail = await queries.detail(conn, blend_id, principal.user_id)
        return await live.with_room_name(services, detail)

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
        async with services.pool.acquire() as conn, conn.transaction():
            found = await queries.require_owner(conn, blend_id, principal.user_id, lock=True)
            settings = found.settings
            if data.settings is not None:
                settings = schemas.BlendSettings(
                    member_limit=data.settings.member_limit or settings.member_limit,
                    playlist_length=data.settings.playlist_length or settings.playlist_length,
                )
                members = await queries.accepted_count(conn, blend_id)
                if settings.member_limit < members:
                    raise Problem(
                        409,
                        "member_limit_too_low",
                        f"The blend already has {members} members.",
                    )
            name = " ".join(data.name.split()) if data.name is not None else None
            if name == "":
                raise Problem(400, "invalid_request", "The name must not be blank.")
            await conn.execute(
                "UPDATE blends SET name = coalesce($2, name), blend_settings = $3::jsonb"
                " WHERE id = $1",
                blend_id,
                name,
                queries.encode_json(settings),
            )
            if settings.playlist_length != found.settings.playlist_length:
                await queries.mark_pending(conn, blend_id)
            detail = await queries.detail(conn, blend_id, principal.user_id)
        await changed(services, jobs, blend_id, with_name=name is not None)
        return detail

    @delete("/{blend_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_blend(
        self, services: Services, principal: Principal, blend_id: uuid.UUID
    ) -> None:
        """Delete the blend, its playlist and its room (owner only)."""
        async with services.pool.acquire() as conn, conn.transaction():
            await queries.require_owner(conn, blend_id, principal.user_id, lock=True)
            await conn.execute("DELETE FROM blends WHERE id = $1", blend_id)

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
        async with services.pool.acquire() as conn, conn.transaction():
            found = await queries.require_owner(conn, blend_id, principal.user_id, lock=True)
            if not await conn.fetchval("SELECT 1 FROM users WHERE id = $1", data.user_id):
                raise Problem(404, "user_not_found", "No such user.")
            status = await conn.fetchval(
                "SELECT status::text FROM blend_participants WHERE blend_id = $1 AND user_id = $2",
                blend_id,
                data.user_id,
            )
            if status == "accepted":
                raise Problem(409, "already_member", "That user is already a member.")
            if status != "pending":
                reserved = await conn.fetchval(
                    "SELECT count(*) FROM blend_participants"
                    " WHERE blend_id = $1 AND status IN ('accepted', 'pending')",
                    blend_id,
                )
                if reserved >= found.settings.member_limit:
                    raise blend_full(found.settings.member_limit)
                await conn.execute(
                    """
                    INSERT INTO blend_participants (blend_id, user_id, status)
                    VALUES ($1, $2, 'pending')
                    ON CONFLICT (blend_id, user_id) DO UPDATE SET status = 'pending'
                    """,
                    blend_id,
                    data.user_id,
                )
            members = await queries.members(conn, blend_id)
        return next(m for m in members if m.user_id == data.user_id)

    @post("/{blend_id:uuid}/accept", status_code=200)
    async def accept_invite(
        self, services: Services, principal: Principal, jobs: BlendJobs, blend_id: uuid.UUID
    ) -> schemas.BlendDetail:
        """Accept an invitation."""
        async with services.pool.acquire() as conn, conn.transaction():
            found = await queries.standing(conn, blend_id, principal.user_id, lock=True)
            if not found.visible:
                raise queries.blend_not_found()
            joined = found.status == "pending"
            if joined:
                if await queries.accepted_count(conn, blend_id) >= found.settings.member_limit:
                    raise blend_full(found.settings.member_limit)
                await conn.execute(
                    "UPDATE blend_participants SET status = 'accepted', joined_at = now()"
                    " WHERE blend_id = $1 AND user_id = $2",
                    blend_id,
                    principal.user_id,
                )
                await queries.mark_pending(conn, blend_id)
            detail = await queries.detail(conn, blend_id, principal.user_id)
        if joined:
            await changed(services, jobs, blend_id)
        return detail

    @post("/{blend_id:uuid}/decline", status_code=HTTP_204_NO_CONTENT)
    async def decline_invite(
        self, services: Services, principal: Principal, blend_id: uuid.UUID
    ) -> None:
        """Decline an invitation (only a pending one)."""
        async with services.pool.acquire() as conn, conn.transaction():
            found = await queries.standing(conn, blend_id, principal.user_id)
            if found.status != "pending":
                raise Problem(404, "no_invitation", "You have no pending invitation to it.")
            await conn.execute(
                "UPDATE blend_participants SET status = 'declined'"
                " WHERE blend_id = $1 AND user_id = $2",
                blend_id,
                principal.user_id,
            )

    @post("/{blend_id:uuid}/leave", status_code=HTTP_204_NO_CONTENT)
    async def leave_blend(
        self, services: Services, principal: Principal, jobs: BlendJobs, blend_id: uuid.UUID
    ) -> None:
        """Leave a blend (the owner deletes it instead)."""
        async with services.pool.acquire() as conn, conn.transaction():
            found = await queries.standing(conn, blend_id, principal.user_id, lock=True)
            if found.status != "accepted":
                raise queries.blend_not_found()
            if found.owner_id == principal.user_id:
                raise Problem(
                    409, "owner_cannot_leave", "The owner cannot leave; delete the blend instead."
                )
            await self._remove(conn, blend_id, principal.user_id)
        await changed(services, jobs, blend_id)

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
        async with services.pool.acquire() as conn, conn.transaction():
            await queries.require_owner(conn, blend_id, principal.user_id, lock=True)
            if user_id == principal.user_id:
                raise Problem(
                    409, "owner_cannot_leave", "The owner cannot leave; delete the blend instead."
                )
            if not await self._remove(conn, blend_id, user_id):
                raise Problem(404, "member_not_found", "That user is not in this blend.")
        await changed(services, jobs, blend_id)

    @staticmethod
    async def _remove(conn: Any, blend_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        status = await conn.fetchval(
            "DELETE FROM blend_participants WHERE blend_id = $1 AND user_id = $2"
            " RETURNING status::text",
            blend_id,
            user_id,
        )
        if status == "accepted":
            await queries.mark_pending(conn, blend_id)
        return status is not None

    @post("/{blend_id:uuid}/regenerate", status_code=HTTP_202_ACCEPTED)
    async def regenerate(
        self, services: Services, principal: Principal, jobs: BlendJobs, blend_id: uuid.UUID
    ) -> schemas.Regeneration:
        """Weave the playlist again now (any member)."""
        async with services.pool.acquire() as conn:
            found = await queries.standing(conn, blend_id, principal.user_id)
            if found.status != "accepted":
                raise queries.blend_not_found()
            await queries.mark_pending(conn, blend_id)
        jobs.kick(blend_id)
        return schemas.Regeneration(blend_id=blend_id, status="pending")


# ------------------------------------------------------------------ taste sources


def _provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise Problem(404, "unknown_provider", f"Providers are {', '.join(PROVIDERS)}.")
    return provider


def _time_range(time_range: str) -> str:
    if time_range not in TIME_RANGES:
        raise Problem(404, "unknown_time_range", f"Time ranges are {', '.join(TIME_RANGES)}.")
    return time_range


class TasteController(Controller):
    path = "/taste"
    tags = ["blends"]
    dependencies = {"jobs": Provide(get_jobs, sync_to_thread=False)}

    @get("/connections")
    async def list_connections(
        self, services: Services, principal: Principal
    ) -> list[schemas.Connection]:
        """The caller's provider connections (tokens are never returned)."""
        async with services.pool.acquire() as conn:
            return await taste.list_connections(conn, principal.user_id)

    @put("/connections/{provider:str}")
    async def connect_provider(
        self,
        services: Services,
        principal: Principal,
        provider: str,
        data: schemas.ConnectProvider,
    ) -> schemas.Connection:
        """Store (or replace) a provider connection; its tokens are encrypted at rest."""
        cipher = TokenCipher(services.settings.encryption_key)
        async with services.pool.acquire() as conn:
            return await taste.upsert_connection(
                conn, cipher, principal.user_id, _provider(provider), data
            )

    @delete("/connections/{provider:str}", status_code=HTTP_204_NO_CONTENT)
    async def disconnect_provider(
        self, services: Services, principal: Principal, jobs: BlendJobs, provider: str
    ) -> None:
        """Forget a connection and its imported top tracks."""
        async with services.pool.acquire() as conn, conn.transaction():
            gone = await conn.fetchval(
                "DELETE FROM provider_connections WHERE user_id = $1 AND provider = $2"
                " RETURNING id",
                principal.user_id,
                _provider(provider),
            )
            if gone is None:
                raise Problem(404, "not_connected", "No such connection.")
            blends = await self._mark_my_blends(conn, principal.user_id)
        for blend_id in blends:
            jobs.kick(blend_id)

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
        async with services.pool.acquire() as conn, conn.transaction():
            connection = await taste.connection_id(conn, principal.user_id, _provider(provider))
            if connection is None:
                raise Problem(404, "not_connected", f"Connect {provider} first.")
            await taste.replace_top_tracks(conn, connection, _time_range(time_range), data.tracks)
            blends = await self._mark_my_blends(conn, principal.user_id)
            tracks = await taste.top_tracks(conn, connection, time_range)
        for blend_id in blends:
            jobs.kick(blend_id)
        return tracks

    @get("/connections/{provider:str}/top-tracks/{time_range:str}")
    async def read_top_tracks(
        self, services: Services, principal: Principal, provider: str, time_range: str
    ) -> list[schemas.TopTrack]:
        async with services.pool.acquire() as conn:
            connection = await taste.connection_id(conn, principal.user_id, _provider(provider))
            if connection is None:
                raise Problem(404, "not_connected", f"Connect {provider} first.")
            return await taste.top_tracks(conn, connection, _time_range(time_range))

    @get("/tracks")
    async def my_taste(self, services: Services, principal: Principal) -> list[schemas.TasteTrack]:
        """The caller's taste as blends see it: merged songs, best-loved first."""
        async with services.pool.acquire() as conn:
            (mine,) = await taste.load_tastes(conn, [principal.user_id])
        songs = merge_songs([mine])
        songs.sort(key=lambda s: (-s.scores[0], s.key))
        return [
            schemas.TasteTrack(
                key=s.key,
                track_id=s.by_member[0].track_id,
                name=s.by_member[0].name,
                artist=s.by_member[0].artist,
                source=s.by_member[0].source,
                score=round(s.scores[0], 4),
            )
            for s in songs
        ]

    @staticmethod
    async def _mark_my_blends(conn: Any, user_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await conn.fetch(
            """
            UPDATE blends SET status = 'pending'
            WHERE id IN (SELECT blend_id FROM blend_participants
                         WHERE user_id = $1 AND status = 'accepted')
            RETURNING id
            """,
            user_id,
        )
        return [r["id"] for r in rows]
