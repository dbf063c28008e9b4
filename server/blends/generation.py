"""The generation job: weave pending blends, and every blend once a day.

A blend needs weaving when its status is ``pending`` (members joined or left, settings or
tastes changed), ``processing`` with nobody working on it (its process died), or ``completed``
longer ago than ``blend_regenerate_hours``. Any number of processes run this job; a
PostgreSQL advisory lock per blend (``pg_try_advisory_lock``, held on the job's connection
while it weaves) makes sure one process weaves a given blend at a time, and a dead process's
lock goes with its connection. The lock and its connection are let go before the room is told
(the room commit takes a connection of its own: holding one while waiting for another is how
ten weaves at once used to hang the whole pool), and each process weaves at most ``_WEAVERS``
blends at a time. Status goes pending -> processing (committed, so clients can see it) ->
completed; a change that lands while a weave runs sets ``pending`` again, and the job weaves
once more before it lets go.

REST handlers wake the job in their own process right after a change (``kick``), so a join
shows up in the room at once; the periodic scan catches everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Litestar
from prometheus_client import Counter, Histogram

from db.pool import Connection
from server.blends import live, schemas
from server.blends import repository as repo
from server.blends.taste import load_tastes
from server.blends.weave import Weave, weave
from server.services import Services

_log = logging.getLogger("blendtune.blends")

# The advisory-lock class for blends ("blen"); the object id is hashtext(blend id).
_LOCK_CLASS = 0x626C656E
# Weaves in a row for one blend before the job lets others have a go.
_MAX_ROUNDS = 5
# Weaves running at once in one process (each holds at most one pool connection at a time).
_WEAVERS = 2
_SCAN_BATCH = 50


@dataclass(frozen=True)
class _Done:
    """A stored weave, to be told to the room."""

    name: str
    owner_id: uuid.UUID
    settings: schemas.BlendSettings
    members: list[schemas.Member]
    result: Weave
    generation: int


class BlendJobs:
    """One per process: the periodic scan plus on-demand weaves."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._weavers = asyncio.Semaphore(_WEAVERS)
        registry = services.metrics.registry
        self.weaves = Counter(
            "blendtune_blend_weaves_total",
            "Blend playlists woven by this process.",
            registry=registry,
        )
        self.failures = Counter(
            "blendtune_blend_weave_failures_total",
            "Blend weaves that failed (retried later).",
            registry=registry,
        )
        self.weave_seconds = Histogram(
            "blendtune_blend_weave_seconds",
            "Time to weave and store one blend playlist (room delivery excluded).",
            registry=registry,
        )

    # ------------------------------------------------------------------ entry points

    def kick(self, blend_id: uuid.UUID) -> None:
        """Weave this blend soon, in this process (after the caller's commit)."""
        if self._stopping:
            return
        task = asyncio.create_task(self._kicked(blend_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        interval = self.services.settings.blend_scan_seconds
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception:
                # PostgreSQL down, say: log and try again next round.
                self.failures.inc()
                _log.exception("blend scan failed")
            await asyncio.sleep(interval)

    async def scan(self) -> int:
        """Weave every blend that needs it now; returns how many were woven here."""
        rows = await self.services.pool.fetch(
            """
            SELECT id FROM blends
            WHERE status IN ('pending', 'processing')
               OR (status = 'completed'
                   AND completed_at < now() - $1::float8 * interval '1 hour')
            ORDER BY status = 'completed', completed_at NULLS FIRST, created_at
            LIMIT $2
            """,
            self.services.settings.blend_regenerate_hours,
            _SCAN_BATCH,
        )
        woven = 0
        for row in rows:
            if await self.generate(row["id"]):
                woven += 1
        return woven

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ the work

    async def _kicked(self, blend_id: uuid.UUID) -> None:
        # Another process (or task) may hold the blend's lock; it re-checks the status before
        # letting go, but retry briefly in case it is just letting go. A blend that needs
        # nothing (say, only its name changed) is left alone.
        try:
            for _ in range(10):
                if await self.generate(blend_id):
                    return
                if not await self._needs_work(blend_id):
                    return
                await asyncio.sleep(0.3)
        except Exception:
            self.failures.inc()
            _log.exception("weaving blend %s failed", blend_id)

    async def _needs_work(self, blend_id: uuid.UUID) -> bool:
        status = await self.services.pool.fetchval(
            "SELECT status::text FROM blends WHERE id = $1", blend_id
        )
        return status in ("pending", "processing")

    async def generate(self, blend_id: uuid.UUID) -> bool:
        """Weave the blend if it needs it and no one else is at it; whether this call wove."""
        woven = False
        # At most _WEAVERS weaves at a time per process, each holding at most one connection
        # at a time, so the job can never take the pool from requests.
        async with self._weavers:
            for _ in range(_MAX_ROUNDS):
                done = await self._weave_once(blend_id)
                if done is None:
                    break
                self.weaves.inc()
                # No connection is held here: the room commit acquires its own (issue #11).
                # Two weaves of one blend may be told to the room out of order; the room keeps
                # the newer generation (server/blends/room.py).
                await live.publish_weave(
                    self.services,
                    blend_id,
                    name=done.name,
                    owner_id=done.owner_id,
                    settings=done.settings,
                    members=done.members,
                    result=done.result,
                    generation=done.generation,
                )
                woven = True
                # A change may have landed while the room was being told: weave again.
                if not await self._needs_work(blend_id):
                    break
        return woven

    async def _weave_once(self, blend_id: uuid.UUID) -> _Done | None:
        """One weave, stored; what to tell the room, or None when there is nothing to do here
        (another process holds the blend, it is gone, or it was woven recently enough)."""
        async with self.services.pool.acquire() as conn:
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, hashtext($2))", _LOCK_CLASS, str(blend_id)
            )
            if not locked:
                return None
            try:
                return await self._weave_locked(conn, blend_id)
            finally:
                await conn.execute(
                    "SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK_CLASS, str(blend_id)
                )

    async def _weave_locked(self, conn: Connection, blend_id: uuid.UUID) -> _Done | None:
        # Item ids in the room are g<generation>.<n>: a clock reading keeps them unique, and
        # orders the weaves of one blend.
        generation = await conn.fetchval(
            """
            UPDATE blends SET status = 'processing'
            WHERE id = $1 AND (status IN ('pending', 'processing') OR completed_at IS NULL
                               OR completed_at < now() - $2::float8 * interval '1 hour')
            RETURNING (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
            """,
            blend_id,
            self.services.settings.blend_regenerate_hours,
        )
        if generation is None:
            return None
        started = time.perf_counter()
        async with conn.transaction():
            found = await repo.header(conn, blend_id)
            if found is None:
                return None
            settings = found.settings
            member_ids = await repo.accepted_members(conn, blend_id)
            tastes = await load_tastes(conn, member_ids)
            result = weave(tastes, settings.playlist_length)
            await repo.store_weave(conn, blend_id, result)
            # A change committed meanwhile set 'pending' again: leave it so (see generate).
            await conn.execute(
                """
                UPDATE blends SET status = 'completed', completed_at = now()
                WHERE id = $1 AND status = 'processing'
                """,
                blend_id,
            )
            members = await repo.members(conn, blend_id)
        self.weave_seconds.observe(time.perf_counter() - started)
        return _Done(found.name, found.owner_id, settings, members, result, generation)


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    services: Services = app.state.services
    jobs = BlendJobs(services)
    app.state.blend_jobs = jobs
    runner = asyncio.create_task(jobs.run())
    try:
        yield
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await jobs.stop()
