"""Live previews of a mashup: render a window of the room's timeline, store it, announce it.

One ``PreviewService`` per process owns a ``dsp.Previewer`` (its bounded worker pool, its
byte-bounded cache of decoded sources and stretched clips, its supersession by key). A member
asks over REST; the service reads the room's current seq and timeline from PostgreSQL,
announces ``preview_started`` in the room, and renders in the background. The encoded audio
goes to the storage backend under a server-generated key, and the room gets ``preview_ready``
(with the URL) or ``preview_failed`` as ordinary server batches, so every member on every
process sees it; the audio itself never travels through Redis.

A newer request for the same mashup on the same process supersedes an older one still
rendering (the older one is announced as failed with ``superseded``). The room keeps the
latest ``PREVIEWS_KEPT`` previews; the objects of those it drops are deleted from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import msgspec
from litestar import Litestar
from prometheus_client import Counter, Histogram

import dsp
from dsp.codec import MIME_TYPES, AudioFormat
from rooms.store import RoomGone
from server.mashups import live, room, schemas
from server.problems import Problem
from server.services import Services
from server.storage import Storage, StorageError, new_key, storage_from_settings

_log = logging.getLogger("blendtune.mashups")

PREFIX: Final = "previews"
_MIB: Final = 1024 * 1024
# Stored formats, the configured one first when looking an object up.
EXTENSIONS: Final[dict[str, AudioFormat]] = {
    "mp3": "mp3",
    "ogg": "ogg",
    "flac": "flac",
    "wav": "wav",
}


EXPORT_PREFIX: Final = "exports"
EXPORT_FORMAT: Final[AudioFormat] = "flac"


def export_url(mashup_id: uuid.UUID) -> str:
    return f"/mashups/{mashup_id}/export"


def preview_url(mashup_id: uuid.UUID, preview_id: uuid.UUID) -> str:
    return f"/mashups/{mashup_id}/previews/{preview_id}"


def preview_key(mashup_id: uuid.UUID, preview_id: uuid.UUID, fmt: str) -> str:
    return new_key(PREFIX, mashup_id, preview_id, fmt)


class PreviewService:
    """Renders, stores and announces previews for this process."""

    def __init__(self, services: Services, storage: Storage) -> None:
        settings = services.settings
        self.services = services
        self.storage = storage
        self.format: AudioFormat = settings.mashup_preview_format
        self.max_pending = settings.mashup_preview_max_pending
        self.previewer = dsp.Previewer(
            self._load,
            stem_loader=self._load_stem,
            workers=settings.mashup_preview_workers,
            cache_bytes=settings.mashup_preview_cache_mb * _MIB,
            max_pending=settings.mashup_preview_max_pending,
            format=self.format,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        registry = services.metrics.registry
        self.outcomes = Counter(
            "blendtune_mashup_previews_total",
            "Mashup renders by outcome (previews: ready, superseded, invalid, busy, shutdown,"
            " failed; exports: exported, export_failed).",
            ["outcome"],
            registry=registry,
        )
        self.render_seconds = Histogram(
            "blendtune_mashup_preview_render_seconds",
            "Time to render and encode one preview window.",
            registry=registry,
        )

    async def close(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.previewer.close()

    # ------------------------------------------------------------------ sources

    async def _load(self, track_id: str) -> dsp.Audio:
        """The decoded audio of an uploaded track (dsp caches it by track id)."""
        try:
            upload_id = uuid.UUID(track_id)
        except ValueError:
            raise dsp.MissingSource(f"not an uploaded track id: {track_id!r}") from None
        key = await self.services.pool.fetchval(
            "SELECT storage_key FROM uploaded_tracks WHERE id = $1 AND upload_status = 'uploaded'",
            upload_id,
        )
        if key is None:
            raise dsp.MissingSource(f"uploaded track {track_id} is not in storage")
        try:
            async with self.storage.local_copy(key) as path:
                return await asyncio.to_thread(dsp.decode_file, path)
        except StorageError as exc:
            raise dsp.MissingSource(f"uploaded track {track_id}: {exc}") from None

    async def _load_stem(self, track_id: str, stem: dsp.Stem) -> dsp.Audio | None:
        """The stored stem of an uploaded track, or None when the upload has none (then
        dsp splits the track itself)."""
        column = {"harmonic": "harmonic_storage_key", "percussive": "percussive_storage_key"}
        try:
            upload_id = uuid.UUID(track_id)
        except ValueError:
            raise dsp.MissingSource(f"not an uploaded track id: {track_id!r}") from None
        key = await self.services.pool.fetchval(
            f"SELECT {column[stem]} FROM uploaded_tracks WHERE id = $1", upload_id
        )
        if key is None:
            return None
        try:
            async with self.storage.local_copy(key) as path:
                return await asyncio.to_thread(dsp.decode_file, path)
        except StorageError:
            return None  # lost from storage: splitting the full track still works

    # ------------------------------------------------------------------ requests

    def _admit(self) -> None:
        """Refuse new work while stopping or with ``max_pending`` renders under way."""
        if self._stopping:
            raise Problem(503, "unavailable", "The server is shutting down.")
        if len(self._tasks) >= self.max_pending:
            raise Problem(
                503,
                "busy",
                "Too many renders are under way; retry shortly.",
                headers={"Retry-After": "2"},
            )

    async def request(
        self,
        mashup_id: uuid.UUID,
        user_id: uuid.UUID,
        window: schemas.PreviewWindow,
    ) -> schemas.PreviewAccepted:
        """Announce and start a render of the room's current timeline; answers at once."""
        self._admit()
        found = await live.read_room(self.services, mashup_id)
        if found is None:
            raise Problem(503, "unavailable", "The mashup's room cannot be read; retry shortly.")
        seq, state = found
        preview_id = uuid.uuid4()
        started = room.PreviewStarted(
            id=str(preview_id),
            requested_by=user_id,
            seq=seq,
            start_seconds=window.start_seconds,
            duration_seconds=window.duration_seconds,
        )
        try:
            await live.submit(self.services, mashup_id, [started])
        except RoomGone:
            raise Problem(404, "not_found", "No such mashup.") from None
        except Exception as exc:
            _log.warning("mashup %s: could not announce a preview: %r", mashup_id, exc)
            raise Problem(503, "unavailable", "The mashup's room is unavailable.") from None
        task = asyncio.create_task(
            self._render(mashup_id, preview_id, user_id, seq, state.timeline, window),
            name=f"preview-{preview_id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return schemas.PreviewAccepted(
            id=preview_id,
            url=preview_url(mashup_id, preview_id),
            seq=seq,
            start_seconds=window.start_seconds,
            duration_seconds=window.duration_seconds,
        )

    async def _render(
        self,
        mashup_id: uuid.UUID,
        preview_id: uuid.UUID,
        user_id: uuid.UUID,
        seq: int,
        timeline: dsp.Timeline,
        window: schemas.PreviewWindow,
    ) -> None:
        began = time.perf_counter()
        try:
            result = await self.previewer.render(
                timeline,
                start_seconds=window.start_seconds,
                duration_seconds=window.duration_seconds,
                key=mashup_id,
            )
            self.render_seconds.observe(time.perf_counter() - began)
            key = preview_key(mashup_id, preview_id, result.format)
            await self.store(key, result.data)
        except dsp.Superseded:
            await self._failed(mashup_id, preview_id, "superseded", "A newer preview replaced it.")
            return
        except dsp.PreviewBusy as exc:
            await self._failed(mashup_id, preview_id, "busy", str(exc))
            return
        except dsp.AudioError as exc:
            await self._failed(mashup_id, preview_id, "invalid", str(exc)[:300])
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._failed(mashup_id, preview_id, "shutdown", "The server stopped."), 2.0
                )
            raise
        except Exception:
            _log.exception("mashup %s: preview %s failed", mashup_id, preview_id)
            await self._failed(mashup_id, preview_id, "failed", "The preview could not be made.")
            return
        preview = room.Preview(
            id=str(preview_id),
            url=preview_url(mashup_id, preview_id),
            seq=seq,
            start_seconds=result.start_seconds,
            duration_seconds=result.duration_seconds,
            mime_type=result.mime_type,
            requested_by=user_id,
            loudness_lufs=result.loudness_lufs,
            render_seconds=round(result.render_seconds, 4),
        )
        await self._announce(mashup_id, preview, key)

    # ------------------------------------------------------------------ exports

    async def export(self, mashup_id: uuid.UUID, user_id: uuid.UUID) -> room.Export:
        """Start the full, high-quality render of the room's current timeline (FLAC)."""
        self._admit()
        found = await live.read_room(self.services, mashup_id)
        if found is None:
            raise Problem(503, "unavailable", "The mashup's room cannot be read; retry shortly.")
        seq, state = found
        if not any(not clip.muted for clip in state.timeline.clips):
            raise Problem(409, "empty_timeline", "There is nothing on the timeline to export.")
        export = room.Export(
            id=str(uuid.uuid4()), status="generating", seq=seq, requested_by=user_id
        )
        # An export leaves ``mashups.generation_status`` alone: that column is the
        # generation's (an export used to overwrite it, e.g. "failed" over a completed
        # generation). An export's progress lives in the room's ``export`` field only.
        try:
            await live.submit(self.services, mashup_id, [room.ExportStatus(export=export)])
        except RoomGone:
            raise Problem(404, "not_found", "No such mashup.") from None
        except Exception as exc:
            _log.warning("mashup %s: could not announce an export: %r", mashup_id, exc)
            raise Problem(503, "unavailable", "The mashup's room is unavailable.") from None
        task = asyncio.create_task(
            self._export(mashup_id, export, state.timeline), name=f"export-{export.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return export

    async def _export(
        self, mashup_id: uuid.UUID, export: room.Export, timeline: dsp.Timeline
    ) -> None:
        try:
            result = await self.previewer.render(
                timeline,
                duration_seconds=None,
                key=("export", mashup_id),
                format=EXPORT_FORMAT,
                high_quality=True,
            )
            key = new_key(EXPORT_PREFIX, mashup_id, uuid.UUID(export.id), EXPORT_FORMAT)
            await self.store(key, result.data)
        except dsp.Superseded:
            return  # a newer export of this mashup reports instead
        except dsp.AudioError as exc:
            await self._export_failed(mashup_id, export, str(exc)[:300])
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._export_failed(mashup_id, export, "The server stopped."), 2.0
                )
            raise
        except Exception:
            _log.exception("mashup %s: export %s failed", mashup_id, export.id)
            await self._export_failed(mashup_id, export, "The export could not be made.")
            return
        async with self.services.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT output_storage_key FROM mashups WHERE id = $1 FOR UPDATE", mashup_id
            )
            if row is not None:
                await conn.execute(
                    "UPDATE mashups SET output_storage_key = $2, updated_at = clock_timestamp()"
                    " WHERE id = $1",
                    mashup_id,
                    key,
                )
        if row is None:  # deleted while rendering
            await self.storage.delete(key)
            return
        if row["output_storage_key"] and row["output_storage_key"] != key:
            with contextlib.suppress(StorageError, OSError, ValueError):
                await self.storage.delete(row["output_storage_key"])
        self.outcomes.labels("exported").inc()
        done = msgspec.structs.replace(
            export,
            status="completed",
            url=export_url(mashup_id),
            duration_seconds=result.duration_seconds,
            loudness_lufs=result.loudness_lufs,
        )
        await self._announce_export(mashup_id, done)

    async def _export_failed(self, mashup_id: uuid.UUID, export: room.Export, detail: str) -> None:
        self.outcomes.labels("export_failed").inc()
        failed = msgspec.structs.replace(export, status="failed", detail=detail)
        await self._announce_export(mashup_id, failed)

    async def _announce_export(self, mashup_id: uuid.UUID, export: room.Export) -> None:
        try:
            await live.submit(self.services, mashup_id, [room.ExportStatus(export=export)])
        except RoomGone:
            pass
        except Exception:
            _log.warning("mashup %s: could not announce export %s", mashup_id, export.id)

    async def read_export(self, key: str) -> bytes | None:
        with contextlib.suppress(StorageError, FileNotFoundError, ValueError):
            async with self.storage.local_copy(key) as path:
                return await asyncio.to_thread(path.read_bytes)
        return None

    async def delete_key(self, key: str) -> None:
        try:
            await self.storage.delete(key)
        except (StorageError, OSError, ValueError) as exc:
            _log.warning("could not delete %s: %r", key, exc)

    # ------------------------------------------------------------------ storage

    async def store(self, key: str, data: bytes) -> None:
        """Write ``data`` to the storage backend under ``key`` (atomically)."""

        def write() -> Path:
            fd, name = tempfile.mkstemp(prefix="bt-preview-", suffix=Path(key).suffix)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return Path(name)

        path = await asyncio.to_thread(write)
        try:
            await self.storage.put_file(key, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)

    async def _announce(self, mashup_id: uuid.UUID, preview: room.Preview, key: str) -> None:
        before = await live.read_room(self.services, mashup_id)
        try:
            await live.submit(self.services, mashup_id, [room.PreviewReady(preview=preview)])
        except RoomGone:
            await self.storage.delete(key)  # the mashup was deleted while rendering
            return
        except Exception:
            _log.exception("mashup %s: could not announce preview %s", mashup_id, preview.id)
            self.outcomes.labels("failed").inc()
            return
        self.outcomes.labels("ready").inc()
        # Whatever this announcement pushed out of the room is no longer offered: delete it.
        # (Concurrent announcements only append newer previews, so this never deletes one the
        # room still lists.)
        if before is not None:
            for old in room.evicted_previews(before[1].previews, preview):
                await self.delete(mashup_id, old.id)

    async def _failed(
        self, mashup_id: uuid.UUID, preview_id: uuid.UUID, code: str, detail: str
    ) -> None:
        self.outcomes.labels(code).inc()
        op = room.PreviewFailed(id=str(preview_id), code=code, detail=detail)
        try:
            await live.submit(self.services, mashup_id, [op])
        except RoomGone:
            pass
        except Exception:
            _log.warning("mashup %s: could not announce failed preview %s", mashup_id, preview_id)

    # ------------------------------------------------------------------ stored previews

    def _formats(self) -> list[str]:
        return [self.format, *(ext for ext in EXTENSIONS if ext != self.format)]

    async def read(self, mashup_id: uuid.UUID, preview_id: uuid.UUID) -> tuple[bytes, str] | None:
        """The stored audio and its MIME type, or None."""
        for ext in self._formats():
            key = preview_key(mashup_id, preview_id, ext)
            with contextlib.suppress(StorageError, FileNotFoundError):
                async with self.storage.local_copy(key) as path:
                    data = await asyncio.to_thread(path.read_bytes)
                    return data, MIME_TYPES[EXTENSIONS[ext]]
        return None

    async def delete(self, mashup_id: uuid.UUID, preview_id: str) -> None:
        try:
            parsed = uuid.UUID(preview_id)
        except ValueError:
            return
        for ext in EXTENSIONS:
            try:
                await self.storage.delete(preview_key(mashup_id, parsed, ext))
            except (StorageError, OSError) as exc:
                _log.warning("could not delete preview %s: %r", preview_id, exc)


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """This process's preview service; register after the services lifespan."""
    services: Services = app.state.services
    service = PreviewService(services, storage_from_settings(services.settings))
    app.state.mashup_previews = service
    try:
        yield
    finally:
        await service.close()
