"""Generating a mashup: the durable job behind ``POST /mashups/{id}/generate``.

A request records a job (``mashup_generation_jobs``) and answers 202; the job is then
claimed by a process with ``FOR UPDATE SKIP LOCKED``, like the upload jobs
(``server/uploads/worker.py``). Each process runs at most one generation at a time, so the job
can never take more than one of the pool's connections at once (and never holds one while
asking for another). A running job keeps its lease by touching ``updated_at``; a job whose
process died is taken over by another process once its lease has run out
(``mashup_generation_lease_seconds``), at most ``mashup_generation_max_attempts`` times.
Only processes using the same storage as the one that queued the job claim it: they are the
ones that can read its inputs and store its output.

The steps, each announced in the mashup's room as a ``generation`` server batch (status,
stage and progress) and recorded on the job row:

1. **loading**: the inputs of the mashup and each one's stored ``dsp.structure.Structure``;
2. **arranging**: ``dsp.arrange.arrange`` (pure, in a thread), then ONE server batch with the
   ``generated`` op (the whole new timeline and its clip order) and the plan; its op id is
   the job's, so a job taken over after that point does not apply it twice;
3. **rendering**: the whole timeline in high quality on this process's previewer (the same
   pool and cache as previews and exports), stored as the mashup's output
   (``mashups.output_storage_key``, served at ``/mashups/{id}/export``);
4. **done**: ``generation`` completed (with the URL) and ``export`` completed, in one batch.

``mashups.generation_status`` follows: ``pending`` when queued, ``generating``, then
``completed`` or ``failed``; a failure says why in ``detail`` (e.g. no input has a usable
tempo) both in the room and on the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec
from litestar import Litestar
from prometheus_client import Counter

import dsp
from db.rows import row_as
from dsp.arrange import ArrangeInput, Arrangement, ArrangeOptions, CannotArrange, Plan, arrange
from dsp.structure import Structure
from rooms import fractional
from rooms.kinds import SERVER_USER_ID, OpRejected
from rooms.store import RoomGone
from server.mashups import live, room, schemas
from server.mashups import repository as repo
from server.mashups.previews import EXPORT_FORMAT, EXPORT_PREFIX, PreviewService, export_url
from server.problems import Problem
from server.services import Services
from server.settings import Settings
from server.storage import new_key

_log = logging.getLogger("blendtune.mashups")

MAX_TARGET_SECONDS: Final = 1200
"""The renderer renders at most 20 minutes (``dsp.render.DEFAULT_MAX_RENDER_SECONDS``)."""
MAX_SEED: Final = 2**53 - 1
"""Seeds stay exact as JSON numbers in every client (JavaScript's safe integers)."""
BUSY_RETRIES: Final = 30
"""Renders refused as busy (the previewer's queue is full) are retried once a second."""

# Each upload's dsp.structure.Structure, as the upload analysis stores it (null until then).
_INPUTS = """
SELECT t.id, t.original_filename, t.structure::text AS structure
FROM mashup_input_tracks i JOIN uploaded_tracks t ON t.id = i.uploaded_track_id
WHERE i.mashup_id = $1
ORDER BY i.created_at, t.id
"""

_CLAIM = """
WITH due AS (
    SELECT id FROM mashup_generation_jobs
    WHERE storage_scope = $1
      AND (status = 'pending'
           OR (status = 'generating' AND updated_at < now() - make_interval(secs => $2)))
    ORDER BY created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE mashup_generation_jobs j
SET status = 'generating', attempts = j.attempts + 1, stage = 'loading', updated_at = now(),
    detail = CASE WHEN j.status = 'generating'
        THEN 'taken over from a process that stopped' ELSE j.detail END
FROM due WHERE j.id = due.id
RETURNING j.id, j.mashup_id, j.requested_by, j.seed, j.target_seconds, j.options,
          j.attempts AS attempt
"""


def storage_scope(settings: Settings) -> str:
    """Processes whose storage has the same scope can do each other's generations."""
    return "local:" + os.path.realpath(settings.effective_storage_dir)


class Job(msgspec.Struct, frozen=True):
    """A generation job (the claim's ``RETURNING`` row)."""

    id: uuid.UUID
    mashup_id: uuid.UUID
    requested_by: uuid.UUID | None
    seed: int
    target_seconds: int
    options: ArrangeOptions
    attempt: int


class Failed(Exception):
    """The generation cannot be made; the message says why (shown to the members)."""


class LeaseLost(Exception):
    """Another process took the job over (this one was too slow to keep its lease)."""


class GenerationService:
    """Queues generation jobs and runs them, one at a time, in this process."""

    def __init__(self, services: Services, previews: PreviewService) -> None:
        self.services = services
        self.settings = services.settings
        self.previews = previews
        self.scope = storage_scope(services.settings)
        self._wake = asyncio.Event()
        self.outcomes = Counter(
            "blendtune_mashup_generations_total",
            "Mashup generations by outcome (completed, failed, taken_over).",
            ["outcome"],
            registry=services.metrics.registry,
        )

    # ------------------------------------------------------------------ requests

    async def request(
        self, mashup_id: uuid.UUID, user_id: uuid.UUID, body: schemas.GenerateRequest
    ) -> schemas.GenerationAccepted:
        """Check the request, record the job, announce it; the worker does the rest."""
        options = ArrangeOptions(layering=body.layering)
        async with self.services.pool.acquire() as conn, conn.transaction():
            # The mashup row's lock serialises requests: at most one job under way per mashup.
            await repo.require_editor(conn, mashup_id, user_id, lock=True)
            target = body.target_seconds or await repo.target_seconds(conn, mashup_id)
            inputs = await conn.fetch(
                "SELECT t.original_filename, t.structure IS NULL AS missing"
                " FROM mashup_input_tracks i JOIN uploaded_tracks t ON t.id = i.uploaded_track_id"
                " WHERE i.mashup_id = $1 ORDER BY i.created_at, t.id",
                mashup_id,
            )
            if not inputs:
                raise Problem(409, "no_inputs", "The mashup has no input tracks to generate from.")
            missing = [r["original_filename"] for r in inputs if r["missing"]]
            if missing:
                raise Problem(
                    409,
                    "inputs_not_analysed",
                    "These inputs have no bars and sections yet (their analysis is still "
                    f"running, or failed): {', '.join(missing)[:400]}.",
                )
            if target > MAX_TARGET_SECONDS:
                raise Problem(
                    409,
                    "target_too_long",
                    f"A generated mashup lasts at most {MAX_TARGET_SECONDS} seconds; "
                    "lower the target duration.",
                )
            running = await conn.fetchval(
                "SELECT id FROM mashup_generation_jobs WHERE mashup_id = $1"
                " AND status IN ('pending', 'generating')",
                mashup_id,
            )
            if running is not None:
                raise Problem(
                    409,
                    "generation_in_progress",
                    "A generation of this mashup is already under way; wait for it to finish.",
                )
            seed = body.seed
            if seed is None:
                # Generating again without a seed walks on to the next draft.
                last = await conn.fetchval(
                    "SELECT seed FROM mashup_generation_jobs WHERE mashup_id = $1"
                    " ORDER BY created_at DESC LIMIT 1",
                    mashup_id,
                )
                seed = (last + 1) % (MAX_SEED + 1) if last is not None else _fresh_seed()
            job_id = await conn.fetchval(
                "INSERT INTO mashup_generation_jobs"
                " (mashup_id, requested_by, seed, target_seconds, options, storage_scope)"
                " VALUES ($1, $2, $3, $4, $5::jsonb, $6) RETURNING id",
                mashup_id,
                user_id,
                seed,
                target,
                msgspec.json.encode(options).decode(),
                self.scope,
            )
            await conn.execute(
                "UPDATE mashups SET generation_status = 'pending' WHERE id = $1", mashup_id
            )
        # Announced with the connection released (never two at once).
        job = Job(job_id, mashup_id, user_id, seed, target, options, 0)
        with contextlib.suppress(RoomGone):  # deleted meanwhile: the job went with it
            await self._submit(job, [self._update(job, 0, "pending", "queued", 0.0)], "queued")
        self._wake.set()
        return schemas.GenerationAccepted(
            id=job_id,
            mashup_id=mashup_id,
            seed=seed,
            target_seconds=target,
            layering=options.layering,
            requested_by=user_id,
        )

    # ------------------------------------------------------------------ the worker

    async def loop(self) -> None:
        while True:
            try:
                job = await self.claim()
                if job is not None:
                    await self.run(job)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("mashup generation: worker step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), self.settings.mashup_generation_poll_seconds
                )
            self._wake.clear()

    async def claim(self) -> Job | None:
        async with self.services.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _CLAIM, self.scope, self.settings.mashup_generation_lease_seconds
            )
            if row is None:
                return None
            job = row_as(Job, row, json=("options",))
            await conn.execute(
                "UPDATE mashups SET generation_status = 'generating' WHERE id = $1", job.mashup_id
            )
        if job.attempt > 1:
            self.outcomes.labels("taken_over").inc()
        return job

    async def run(self, job: Job) -> None:
        """Do the job while keeping its lease; a lost lease abandons it to its new owner."""
        work = asyncio.create_task(self._generate(job), name=f"generate-{job.id}")
        lease = asyncio.create_task(self._keep_lease(job, work), name=f"lease-{job.id}")
        try:
            await work
        except LeaseLost:
            _log.info("generation %s: taken over by another process", job.id)
        except asyncio.CancelledError:
            if _cancelling():  # this process is stopping: hand the job back now
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._release(job), 2.0)
                raise
            _log.info("generation %s: taken over by another process", job.id)
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease

    async def _keep_lease(self, job: Job, work: asyncio.Task[None]) -> None:
        interval = self.settings.mashup_generation_lease_seconds / 4
        while True:
            await asyncio.sleep(interval)
            try:
                kept = await self.services.pool.fetchval(
                    "UPDATE mashup_generation_jobs SET updated_at = now()"
                    " WHERE id = $1 AND attempts = $2 AND status = 'generating' RETURNING id",
                    job.id,
                    job.attempt,
                )
            except Exception as exc:  # the database is away: the lease may run out; try again
                _log.warning("generation %s: could not renew the lease: %r", job.id, exc)
                continue
            if kept is None:
                work.cancel()
                return

    async def _release(self, job: Job) -> None:
        await self.services.pool.execute(
            "UPDATE mashup_generation_jobs SET status = 'pending', updated_at = now(),"
            " detail = 'handed back by a process that was stopping'"
            " WHERE id = $1 AND attempts = $2 AND status = 'generating'",
            job.id,
            job.attempt,
        )

    async def _generate(self, job: Job) -> None:
        try:
            if job.attempt > self.settings.mashup_generation_max_attempts:
                raise Failed(
                    f"generation was interrupted {job.attempt - 1} times (its process stopped)"
                )
            await self._progress(job, 1, "loading", 0.05)
            inputs = await self._inputs(job)
            await self._progress(job, 2, "arranging", 0.15)
            try:
                arranged = await asyncio.to_thread(
                    arrange, inputs, float(job.target_seconds), job.seed, job.options
                )
            except CannotArrange as exc:
                raise Failed(str(exc)) from None
            seq = await self._place(job, arranged)
            key, rendered = await self._render(job, arranged)
            await self._complete(job, arranged.plan, seq, key, rendered)
        except Failed as exc:
            await self._fail(job, str(exc)[:500])
        except (asyncio.CancelledError, LeaseLost):
            raise
        except RoomGone:
            _log.info("generation %s: the mashup was deleted", job.id)
        except Exception:
            _log.exception("generation %s failed", job.id)
            await self._fail(job, "The generation failed on the server; try again.")

    # ------------------------------------------------------------------ steps

    async def _inputs(self, job: Job) -> list[ArrangeInput]:
        rows = await self.services.pool.fetch(_INPUTS, job.mashup_id)
        if not rows:
            raise Failed("the mashup has no input tracks")
        inputs = []
        for row in rows:
            if row["structure"] is None:
                raise Failed(f"input {row['original_filename']} has no bars and sections yet")
            try:
                structure = msgspec.json.decode(row["structure"], type=Structure)
            except msgspec.DecodeError as exc:  # a ValidationError is one too
                raise Failed(
                    f"the analysis of {row['original_filename']} is unreadable: {exc}"
                ) from None
            inputs.append(ArrangeInput(track_id=str(row["id"]), structure=structure))
        return inputs

    async def _place(self, job: Job, arranged: Arrangement) -> int:
        """The generated timeline replaces the room's, with the plan, as one batch; its seq."""
        clips = arranged.timeline.clips
        keys = fractional.keys_between(None, None, len(clips)) if clips else []
        order = {clip.id: key for clip, key in zip(clips, keys, strict=True)}
        placed = room.Generated(
            generation_id=str(job.id),
            requested_by=job.requested_by or SERVER_USER_ID,
            timeline=arranged.timeline,
            order=order,
        )
        update = self._update(job, 3, "generating", "rendering", 0.35, plan=arranged.plan)
        await self._record(job, "rendering", 0.35, plan=arranged.plan)
        try:
            # The same op id on every attempt: a job taken over after this point does not
            # place its (identical, the arranger being deterministic) timeline twice.
            return await live.submit(
                self.services, job.mashup_id, [placed, update], op_id=f"gen-{job.id}"
            )
        except OpRejected as exc:
            raise Failed(f"the room refused the generated timeline: {exc.reason}") from None

    async def _render(self, job: Job, arranged: Arrangement) -> tuple[str, dsp.PreviewResult]:
        for attempt in range(BUSY_RETRIES):
            try:
                result = await self.previews.previewer.render(
                    arranged.timeline,
                    duration_seconds=None,
                    key=("generate", job.mashup_id),
                    format=EXPORT_FORMAT,
                    high_quality=True,
                )
                break
            except dsp.PreviewBusy:
                if attempt == BUSY_RETRIES - 1:
                    raise Failed("the server is too busy to render the draft; try again") from None
                await asyncio.sleep(1.0)
            except dsp.Superseded:
                raise Failed("a newer generation replaced this one") from None
            except dsp.AudioError as exc:
                raise Failed(f"the draft could not be rendered: {exc}") from None
        key = new_key(EXPORT_PREFIX, job.mashup_id, job.id, EXPORT_FORMAT)
        await self.previews.store(key, result.data)
        return key, result

    async def _complete(
        self, job: Job, plan: Plan, seq: int, key: str, rendered: dsp.PreviewResult
    ) -> None:
        async with self.services.pool.acquire() as conn, conn.transaction():
            old = await conn.fetchrow(
                "SELECT output_storage_key FROM mashups WHERE id = $1 FOR UPDATE", job.mashup_id
            )
            mine = await conn.fetchval(
                "UPDATE mashup_generation_jobs SET status = 'completed', stage = 'done',"
                " progress = 1, output_storage_key = $3, updated_at = now(),"
                " finished_at = now() WHERE id = $1 AND attempts = $2"
                " AND status = 'generating' RETURNING id",
                job.id,
                job.attempt,
                key,
            )
            if old is not None and mine is not None:
                await conn.execute(
                    "UPDATE mashups SET output_storage_key = $2, generation_status = 'completed',"
                    " updated_at = clock_timestamp() WHERE id = $1",
                    job.mashup_id,
                    key,
                )
        if old is None or mine is None:  # deleted meanwhile, or taken over: not ours to keep
            await self.previews.delete_key(key)
            if mine is None and old is not None:
                raise LeaseLost(str(job.id))
            return
        if old["output_storage_key"] and old["output_storage_key"] != key:
            await self.previews.delete_key(old["output_storage_key"])
        self.outcomes.labels("completed").inc()
        url = export_url(job.mashup_id)
        done = self._update(job, 4, "completed", "done", 1.0, plan=plan, url=url)
        export = room.Export(
            id=str(job.id),
            status="completed",
            seq=seq,
            requested_by=job.requested_by or SERVER_USER_ID,
            url=url,
            duration_seconds=rendered.duration_seconds,
            loudness_lufs=rendered.loudness_lufs,
        )
        await self._submit(job, [done, room.ExportStatus(export=export)], "done")
        _log.info("generation %s of mashup %s completed", job.id, job.mashup_id)

    async def _fail(self, job: Job, detail: str) -> None:
        self.outcomes.labels("failed").inc()
        try:
            async with self.services.pool.acquire() as conn, conn.transaction():
                mine = await conn.fetchval(
                    "UPDATE mashup_generation_jobs SET status = 'failed', stage = 'failed',"
                    " detail = $3, updated_at = now(), finished_at = now()"
                    " WHERE id = $1 AND attempts = $2 AND status = 'generating' RETURNING id",
                    job.id,
                    job.attempt,
                    detail,
                )
                if mine is not None:
                    await conn.execute(
                        "UPDATE mashups SET generation_status = 'failed' WHERE id = $1",
                        job.mashup_id,
                    )
        except Exception:
            _log.exception("generation %s: could not record the failure", job.id)
            return
        if mine is None:
            return
        _log.info("generation %s failed: %s", job.id, detail)
        update = self._update(job, 9, "failed", "failed", 1.0, detail=detail)
        await self._submit(job, [update], "failed")

    # ------------------------------------------------------------------ recording, announcing

    def _update(
        self,
        job: Job,
        step: int,
        status: room.GenerationStatusName,
        stage: room.GenerationStage,
        progress: float,
        **extra: Any,
    ) -> room.GenerationUpdate:
        return room.GenerationUpdate(
            generation=room.Generation(
                id=str(job.id),
                # Later attempts outrank earlier ones; within one, later steps do.
                version=job.attempt * 100 + step,
                status=status,
                stage=stage,
                progress=progress,
                seed=job.seed,
                target_seconds=job.target_seconds,
                requested_by=job.requested_by,
                **extra,
            )
        )

    async def _record(
        self, job: Job, stage: str, progress: float, plan: Plan | None = None
    ) -> None:
        """Move the job row on (and renew its lease); LeaseLost if it is no longer ours."""
        mine = await self.services.pool.fetchval(
            "UPDATE mashup_generation_jobs SET stage = $3, progress = $4,"
            " plan = coalesce($5::jsonb, plan), updated_at = now()"
            " WHERE id = $1 AND attempts = $2 AND status = 'generating' RETURNING id",
            job.id,
            job.attempt,
            stage,
            progress,
            None if plan is None else msgspec.json.encode(plan).decode(),
        )
        if mine is None:
            raise LeaseLost(str(job.id))

    async def _progress(
        self, job: Job, step: int, stage: room.GenerationStage, progress: float
    ) -> None:
        await self._record(job, stage, progress)
        await self._submit(job, [self._update(job, step, "generating", stage, progress)], stage)

    async def _submit(self, job: Job, ops: list[room.MashupOp], label: str) -> None:
        """Progress is best effort: the job row is the record, the room a live view."""
        try:
            await live.submit(
                self.services,
                job.mashup_id,
                ops,
                op_id=f"gen-{job.id.hex[:20]}-{job.attempt}-{label}",
            )
        except RoomGone:
            raise
        except Exception as exc:
            _log.warning("generation %s: could not announce %s: %r", job.id, label, exc)


def _fresh_seed() -> int:
    return random.SystemRandom().randrange(0, 2**31)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """This process's generation worker; register after the previews lifespan."""
    services: Services = app.state.services
    service = GenerationService(services, app.state.mashup_previews)
    app.state.mashup_generation = service
    task = asyncio.create_task(service.loop(), name="mashup-generation")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
