"""The upload worker: moves received files into storage, then analyses them.

Runs in every server process (a lifespan task). Jobs are claimed with ``FOR UPDATE SKIP
LOCKED`` so processes never take the same job twice; a process only claims jobs whose local
file lives in its own incoming directory (processes that share the directory share the
work). A job left in ``uploading`` by a process that died mid-move is taken over once its
lease (``updated_at`` + ``upload_lease_seconds``) has passed. Failed moves are retried with
exponential backoff; after ``upload_max_attempts`` the job is ``failed`` and the local file
is kept, so nothing received is ever lost. The local file is deleted only after the
database records that the object is in storage.

Analysis decodes the stored object once and computes everything dsp offers for it
(``dsp.track.analyze_track``): the analysis, the structure (bars, sections), the waveform
peaks and the harmonic/percussive stems. The stems go to storage first (FLAC, under
``stems/<owner>/<upload>-harmonic.flac`` and ``-percussive.flac``), then one transaction
records all of it; a storage failure leaves the upload ``analyzing`` to be retried after
the lease, like a failed read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from prometheus_client import Counter

from db.rows import row_as
from dsp.codec import Audio, encode_file
from dsp.errors import AudioError
from dsp.structure import Stem
from dsp.track import TrackAnalysis, analyze_track_path
from server import faults
from server.releases.repository import promote_processing_releases
from server.services import Services
from server.storage import Storage, StorageError, check_key, new_key, storage_from_settings

_log = logging.getLogger("blendtune.uploads")

_CLAIM_JOB = """
WITH due AS (
    SELECT id FROM upload_jobs
    WHERE starts_with(local_path, $1)
      AND ((status = 'pending' AND next_attempt_at <= now())
           OR (status = 'uploading' AND updated_at < now() - make_interval(secs => $2)))
    ORDER BY next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE upload_jobs j
SET status = 'uploading',
    updated_at = now(),
    -- Taking over from a dead worker counts as a failed attempt.
    retry_count = j.retry_count + (j.status = 'uploading')::int,
    error_log = CASE WHEN j.status = 'uploading'
        THEN left(coalesce(j.error_log || E'\n', '') || 'worker lost mid-move; retrying', 10000)
        ELSE j.error_log END
FROM due WHERE j.id = due.id
RETURNING j.id, j.uploaded_track_id AS upload_id, j.user_id, j.local_path, j.retry_count
"""

_FAIL_JOB = """
UPDATE upload_jobs
SET retry_count = retry_count + 1,
    status = CASE WHEN retry_count + 1 >= $2 THEN 'failed' ELSE 'pending' END::upload_job_status,
    next_attempt_at = now() + make_interval(secs => $3),
    error_log = left(coalesce(error_log || E'\n', '') || $4, 10000),
    updated_at = now()
WHERE id = $1 AND status = 'uploading'
RETURNING status::text
"""

_CLAIM_ANALYSIS = """
WITH due AS (
    SELECT id FROM uploaded_tracks
    WHERE upload_status = 'uploaded'
      AND (analysis_status = 'pending'
           OR (analysis_status = 'analyzing' AND updated_at < now() - make_interval(secs => $1)))
    ORDER BY created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE uploaded_tracks u SET analysis_status = 'analyzing', updated_at = now()
FROM due WHERE u.id = due.id
RETURNING u.id, u.user_id, u.storage_key
"""

STEMS_PREFIX = "stems"


def stem_key(owner: uuid.UUID, upload_id: uuid.UUID, stem: Stem) -> str:
    """Where an upload's stem lives: ``stems/<owner hex>/<upload hex>-<stem>.flac``."""
    return check_key(f"{STEMS_PREFIX}/{owner.hex}/{upload_id.hex}-{stem}.flac")


class Job(msgspec.Struct, frozen=True):
    """A claimed move (the claim's ``RETURNING`` row)."""

    id: uuid.UUID
    upload_id: uuid.UUID
    user_id: uuid.UUID
    local_path: str
    retry_count: int

    @property
    def path(self) -> Path:
        return Path(self.local_path)


class UploadWorker:
    def __init__(self, services: Services, storage: Storage) -> None:
        self.services = services
        self.storage = storage
        self.settings = services.settings
        self.incoming = Path(self.settings.effective_upload_dir).absolute()
        self._move_wake = asyncio.Event()
        self._analysis_wake = asyncio.Event()
        registry = services.metrics.registry
        self.moves = Counter(
            "blendtune_upload_moves_total",
            "Upload moves into storage by result (stored, retry, failed).",
            ["result"],
            registry=registry,
        )
        self.analyses = Counter(
            "blendtune_upload_analyses_total",
            "Upload analyses by result (completed, failed).",
            ["result"],
            registry=registry,
        )

    def wake(self) -> None:
        """A new job was recorded by this process: look now instead of at the next poll."""
        self._move_wake.set()

    def backoff(self, retry_count: int) -> float:
        base = self.settings.upload_retry_base_seconds * 2 ** min(retry_count, 30)
        capped: float = min(self.settings.upload_retry_max_seconds, base)
        return capped * random.uniform(0.5, 1.0)

    # -------------------------------------------------------------------- moving

    async def sweep_orphans(self) -> int:
        """Delete received files no job refers to (their process died before recording
        them, so the client never got a 202). Only files older than the lease: a sibling
        process sharing the directory may be about to record a fresh one."""
        if not await asyncio.to_thread(self.incoming.is_dir):
            return 0
        known = {
            r["local_path"]
            for r in await self.services.pool.fetch(
                "SELECT local_path FROM upload_jobs WHERE starts_with(local_path, $1)",
                str(self.incoming) + os.sep,
            )
        }
        cutoff = time.time() - self.settings.upload_lease_seconds
        removed = 0
        for path in await asyncio.to_thread(lambda: list(self.incoming.iterdir())):
            with contextlib.suppress(FileNotFoundError):
                if str(path) not in known and path.stat().st_mtime < cutoff:
                    await asyncio.to_thread(path.unlink)
                    removed += 1
        if removed:
            _log.warning("removed %d unrecorded file(s) from %s", removed, self.incoming)
        return removed

    async def move_loop(self) -> None:
        try:
            await self.sweep_orphans()
        except Exception:
            _log.exception("upload worker: sweeping the incoming directory failed")
        while True:
            try:
                job = await self.claim_job()
                if job is not None:
                    await self.move(job)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("upload worker: move step failed")
            await self._sleep(self._move_wake)

    async def claim_job(self) -> Job | None:
        prefix = str(self.incoming) + os.sep
        async with self.services.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_CLAIM_JOB, prefix, self.settings.upload_lease_seconds)
            if row is None:
                return None
            job = row_as(Job, row)
            await conn.execute(
                "UPDATE uploaded_tracks SET upload_status = 'uploading', updated_at = now()"
                " WHERE id = $1",
                job.upload_id,
            )
        return job

    async def move(self, job: Job) -> None:
        extension = job.path.suffix.lstrip(".")
        key = new_key("uploads", job.user_id, job.upload_id, extension)
        try:
            if not await asyncio.to_thread(job.path.is_file):
                raise StorageError(f"the received file {job.path.name} is missing")
            await self.storage.put_file(key, job.path)
        except (StorageError, OSError) as exc:
            await self.fail(job, str(exc))
            return
        # The job and its upload change together (a crash between them must not leave a
        # completed job behind an upload still 'uploading').
        async with self.services.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE upload_jobs SET status = 'completed', updated_at = now() WHERE id = $1",
                job.id,
            )
            await faults.pause(self.settings, "upload.stored")
            kept = await conn.fetchval(
                "UPDATE uploaded_tracks SET upload_status = 'uploaded', storage_key = $2,"
                " updated_at = now() WHERE id = $1 RETURNING id",
                job.upload_id,
                key,
            )
        if kept is None:  # the upload was deleted while it was being moved
            await self.storage.delete(key)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(job.path.unlink)
        self.moves.labels("stored").inc()
        _log.info("upload %s stored as %s", job.upload_id, key)
        self._analysis_wake.set()

    async def fail(self, job: Job, message: str) -> None:
        delay = self.backoff(job.retry_count)
        # The job and its upload change together: a crash in between must not leave an
        # upload 'uploading' behind a failed job (issue #16).
        async with self.services.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(
                _FAIL_JOB, job.id, self.settings.upload_max_attempts, delay, message[:1000]
            )
            await faults.pause(self.settings, "upload.failed")
            await conn.execute(
                "UPDATE uploaded_tracks SET upload_status = $2, updated_at = now() WHERE id = $1",
                job.upload_id,
                "failed" if status == "failed" else "pending",
            )
        self.moves.labels("failed" if status == "failed" else "retry").inc()
        _log.warning(
            "upload %s: move failed (%s); job now %s, next try in %.1f s",
            job.upload_id,
            message,
            status,
            delay,
        )

    # -------------------------------------------------------------------- analysis

    async def analysis_loop(self) -> None:
        while True:
            try:
                row = await self.services.pool.fetchrow(
                    _CLAIM_ANALYSIS, self.settings.upload_lease_seconds
                )
                if row is not None:
                    await self.analyse(row["id"], row["user_id"], row["storage_key"])
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("upload worker: analysis step failed")
            await self._sleep(self._analysis_wake)

    async def analyse(self, upload_id: uuid.UUID, owner: uuid.UUID, key: str) -> None:
        try:
            async with self.storage.local_copy(key) as path:
                result = await asyncio.to_thread(analyze_track_path, path)
            stems = await self._store_stems(upload_id, owner, result)
        except StorageError as exc:
            # Not the audio's fault: leave it 'analyzing' so it is retried after the lease.
            _log.warning("upload %s: cannot read %s or store its stems: %s", upload_id, key, exc)
            return
        except AudioError as exc:
            await self._finish(upload_id, "failed", {"error": str(exc)})
            return
        except Exception as exc:
            _log.exception("upload %s: analysis crashed", upload_id)
            await self._finish(upload_id, "failed", {"error": f"analysis failed: {exc}"})
            return
        analysis = result.analysis
        bpm = analysis.bpm if analysis.bpm is not None and 0 < analysis.bpm < 1000 else None
        structure = msgspec.structs.replace(result.structure, has_stems=stems is not None)
        kept = await self._finish(
            upload_id,
            "completed",
            msgspec.to_builtins(analysis),
            bpm=None if bpm is None else Decimal(str(round(bpm, 2))),
            key=analysis.key_signature[:20] if analysis.key_signature else None,
            duration=Decimal(str(round(analysis.duration_seconds, 2)))
            if analysis.duration_seconds > 0
            else None,
            structure=msgspec.json.encode(structure).decode(),
            peaks=msgspec.json.encode(result.peaks).decode(),
            stems=stems,
        )
        if not kept and stems is not None:  # deleted while it was being analysed
            for stem_object in stems:
                await self.storage.delete(stem_object)

    async def _store_stems(
        self, upload_id: uuid.UUID, owner: uuid.UUID, result: TrackAnalysis
    ) -> tuple[str, str] | None:
        """Encode the stems (FLAC, in a thread) and store them; their keys, or None."""
        if result.stems is None:
            return None
        harmonic, percussive = result.stems
        keys = (stem_key(owner, upload_id, "harmonic"), stem_key(owner, upload_id, "percussive"))
        with tempfile.TemporaryDirectory(prefix="bt-stems-") as tmp:
            for key, audio in zip(keys, (harmonic, percussive), strict=True):
                path = Path(tmp) / Path(key).name
                await asyncio.to_thread(_encode_stem, audio, path)
                await self.storage.put_file(key, path)
        return keys

    async def _finish(
        self,
        upload_id: uuid.UUID,
        status: str,
        analysis: dict[str, Any],
        *,
        bpm: Decimal | None = None,
        key: str | None = None,
        duration: Decimal | None = None,
        structure: str | None = None,
        peaks: str | None = None,
        stems: tuple[str, str] | None = None,
    ) -> bool:
        """Record the outcome; False when the upload no longer exists."""
        async with self.services.pool.acquire() as conn, conn.transaction():
            kept = await conn.fetchval(
                "UPDATE uploaded_tracks SET analysis_status = $2, analysis = $3::jsonb,"
                " bpm = coalesce($4, bpm), key_signature = coalesce($5, key_signature),"
                " duration_seconds = coalesce($6, duration_seconds),"
                " structure = $7::jsonb, peaks = $8::jsonb,"
                " harmonic_storage_key = $9::varchar, percussive_storage_key = $10::varchar,"
                " has_stems = $9::varchar IS NOT NULL, updated_at = now()"
                " WHERE id = $1 RETURNING id",
                upload_id,
                status,
                msgspec.json.encode(analysis).decode(),
                bpm,
                key,
                duration,
                structure,
                peaks,
                stems[0] if stems else None,
                stems[1] if stems else None,
            )
            # The releases waiting for this analysis move on in the same transaction.
            await promote_processing_releases(conn, upload_id)
        self.analyses.labels(status).inc()
        _log.info("upload %s: analysis %s", upload_id, status)
        return kept is not None

    async def _sleep(self, event: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), self.settings.upload_poll_seconds)
        event.clear()


def _encode_stem(audio: Audio, path: Path) -> None:
    encode_file(audio, path, format="flac")


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Start this process's upload worker; register after the services lifespan."""
    services: Services = app.state.services
    worker = UploadWorker(services, storage_from_settings(services.settings))
    app.state.upload_worker = worker
    tasks = [
        asyncio.create_task(worker.move_loop(), name="upload-mover"),
        asyncio.create_task(worker.analysis_loop(), name="upload-analyser"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
