"""Uploads' rules and transactions (docs/catalog.md, "Uploads").

A received file is recorded with the job that moves it in one transaction, and deleted
again if recording fails (nothing will ever move it). Files in storage are deleted only
after the commit that stops the rows pointing at them: losing a file then can leave an
orphan, never a row without its audio.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import anyio
import msgspec
from litestar.datastructures import State

from dsp.structure import Peaks
from server.mashups import live as mashups_live
from server.problems import Problem
from server.services import Services
from server.storage import new_key, storage_from_settings
from server.uploads import repository as repo
from server.uploads.receive import Received
from server.uploads.schemas import Upload, UploadPage


def _wake_worker(state: State) -> None:
    """The job is recorded: this process's worker looks now instead of at its next poll."""
    worker = state.get("upload_worker")
    if worker is not None:
        worker.wake()


async def record(services: Services, state: State, owner: uuid.UUID, received: Received) -> Upload:
    try:
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await repo.record(conn, owner, received)
            upload = await repo.fetch(conn, received.id, owner)
    except BaseException:
        # Not recorded, so no job will ever move it: do not leave it behind.
        with contextlib.suppress(FileNotFoundError):
            await anyio.Path(received.path).unlink()
        raise
    _wake_worker(state)
    return upload


async def page(services: Services, owner: uuid.UUID, limit: int, cursor: str | None) -> UploadPage:
    return await repo.page(services.pool, owner, limit, cursor)


async def read(services: Services, upload_id: uuid.UUID, owner: uuid.UUID) -> Upload:
    async with services.pool.acquire() as conn:
        return await repo.fetch(conn, upload_id, owner)


class PeaksAnswer(msgspec.Struct, frozen=True):
    peaks: Peaks
    etag: str


async def peaks(services: Services, upload_id: uuid.UUID, reader: uuid.UUID) -> PeaksAnswer:
    """The waveform peaks and their ETag (the row's version), for the owner and for members
    of a mashup that has the upload as an input."""
    async with services.pool.acquire() as conn:
        found = await repo.peaks(conn, upload_id, reader)
    if found.peaks is None:
        raise Problem(
            409, "not_analysed", f"The upload has no peaks yet (analysis {found.analysis_status})."
        )
    return PeaksAnswer(
        peaks=msgspec.json.decode(found.peaks, type=Peaks),
        etag=f'"{upload_id.hex}-{found.version}"',
    )


async def retry(services: Services, state: State, upload_id: uuid.UUID, owner: uuid.UUID) -> Upload:
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            await repo.fetch(conn, upload_id, owner)
            if not await repo.requeue_failed(conn, upload_id):
                raise Problem(409, "not_failed", "Only a failed upload can be retried.")
        upload = await repo.fetch(conn, upload_id, owner)
    _wake_worker(state)
    return upload


async def delete(services: Services, upload_id: uuid.UUID, owner: uuid.UUID) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        files = await repo.lock_for_delete(conn, upload_id, owner)
        if files.job_status == "uploading":
            # The mover would store the object after we deleted it: an orphan.
            raise Problem(409, "upload_busy", "The upload is being stored; try again in a moment.")
        if files.in_release:
            raise Problem(409, "in_release", "The upload is a track of a release; remove it there.")
        mashups = await repo.delete(conn, upload_id)
    storage = storage_from_settings(services.settings)
    await storage.delete(files.storage_key or new_key("uploads", owner, upload_id, files.format))
    for stem_object in (files.harmonic_storage_key, files.percussive_storage_key):
        if stem_object:
            await storage.delete(stem_object)
    if files.local_path:
        with contextlib.suppress(OSError):
            await anyio.Path(Path(files.local_path)).unlink(missing_ok=True)
    for mashup_id in mashups:
        await mashups_live.publish_sync(services, mashup_id)
