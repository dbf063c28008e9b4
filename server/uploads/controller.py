"""REST endpoints of uploads: /uploads."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import anyio
import asyncpg
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.status_codes import HTTP_202_ACCEPTED

from dsp.codec import MIME_TYPES
from dsp.structure import Peaks, Structure
from server.auth import Principal
from server.catalog.common import (
    CursorParam,
    Limit,
    newest_first,
)
from server.mashups import live as mashups_live
from server.problems import Problem
from server.services import Services
from server.storage import new_key, storage_from_settings
from server.uploads.receive import receive_upload
from server.uploads.schemas import Upload, UploadPage

_COLUMNS: Final = """
    u.id, u.original_filename, u.file_size_bytes, u.mime_type, u.format,
    u.upload_status::text AS upload_status, u.analysis_status::text AS analysis_status,
    u.bpm::float8 AS bpm, u.key_signature, u.duration_seconds::float8 AS duration_seconds,
    u.has_stems, u.analysis, u.structure, (u.peaks IS NOT NULL) AS has_peaks,
    j.status::text AS job_status,
    coalesce(j.retry_count, 0) AS retry_count,
    CASE WHEN j.status = 'pending' THEN j.next_attempt_at END AS next_attempt_at,
    u.created_at, u.updated_at
"""
_FROM: Final = """
FROM uploaded_tracks u
LEFT JOIN LATERAL (
    SELECT status, retry_count, next_attempt_at FROM upload_jobs
    WHERE uploaded_track_id = u.id ORDER BY created_at DESC LIMIT 1
) j ON true
"""


# The owner, or a member of a mashup that has the upload as an input.
_PEAKS: Final = """
SELECT u.peaks::text AS peaks, u.analysis_status::text AS analysis_status,
       (extract(epoch FROM u.updated_at) * 1000000)::bigint AS version
FROM uploaded_tracks u
WHERE u.id = $1
  AND (u.user_id = $2 OR EXISTS (
      SELECT 1 FROM mashup_input_tracks i
      JOIN mashup_members m ON m.mashup_id = i.mashup_id
      WHERE i.uploaded_track_id = u.id AND m.user_id = $2))
"""


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def peaks_url(upload_id: uuid.UUID) -> str:
    return f"/uploads/{upload_id}/peaks"


def _upload(row: asyncpg.Record) -> Upload:
    fields: dict[str, Any] = {
        k: row[k] for k in Upload.__struct_fields__ if k not in ("structure", "peaks_url")
    }
    fields["analysis"] = msgspec.json.decode(row["analysis"])
    upload = msgspec.convert(fields | {"structure": None, "peaks_url": None}, Upload)
    if row["structure"] is not None:
        upload.structure = msgspec.json.decode(row["structure"], type=Structure)
    if row["has_peaks"]:
        upload.peaks_url = peaks_url(row["id"])
    return upload


async def fetch_upload(conn: Any, upload_id: uuid.UUID, owner: uuid.UUID) -> Upload:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} {_FROM} WHERE u.id = $1 AND u.user_id = $2", upload_id, owner
    )
    if row is None:
        raise Problem(404, "not_found", "No such upload.")
    return _upload(row)


@dataclass
class _UploadOperation(Operation):
    """OpenAPI for the hand-parsed multipart body (Litestar cannot infer it)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="multipart/form-data with the audio as field `file` "
            "(wav, flac, mp3 or ogg).",
            content={
                RequestEncodingType.MULTI_PART: OpenAPIMediaType(
                    schema=Schema(
                        type="object",  # type: ignore[arg-type]
                        required=["file"],
                        properties={
                            "file": Schema(type="string", format="binary"),  # type: ignore[arg-type]
                        },
                    )
                )
            },
        )


class UploadController(Controller):
    path = "/uploads"
    tags = ["uploads"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        # The body is streamed to disk and limited by max_upload_bytes in the handler.
        request_max_body_size=None,
        operation_class=_UploadOperation,
    )
    async def create_upload(
        self, request: Request[Any, Any, Any], services: Services, principal: Principal
    ) -> Upload:
        """Upload an audio file. Answers 202 at once; the file then moves to storage and is
        analysed in the background (poll GET /uploads/{id})."""
        settings = services.settings
        content_type, options = request.content_type
        if content_type != "multipart/form-data":
            raise Problem(415, "unsupported_media_type", "Send multipart/form-data.")
        boundary = options.get("boundary")
        if not boundary or len(boundary) > 200:
            raise Problem(400, "invalid_upload", "The multipart boundary is missing.")
        directory = Path(await anyio.Path(settings.effective_upload_dir).absolute())
        received = await receive_upload(
            request.stream(),
            boundary=boundary,
            content_length=request.content_length,
            max_bytes=settings.max_upload_bytes,
            directory=directory,
        )
        try:
            async with services.pool.acquire() as conn:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO uploaded_tracks (id, user_id, original_filename,"
                        " file_size_bytes, mime_type, format, duration_seconds)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        received.id,
                        principal.user_id,
                        received.original_filename,
                        received.size,
                        MIME_TYPES[received.info.format],
                        received.info.format,
                        Decimal(str(round(max(received.info.duration_seconds, 0.01), 2))),
                    )
                    await conn.execute(
                        "INSERT INTO upload_jobs (kind, target_id, uploaded_track_id, user_id,"
                        " local_path) VALUES ('audio', $1, $1, $2, $3)",
                        received.id,
                        principal.user_id,
                        str(received.path),
                    )
                upload = await fetch_upload(conn, received.id, principal.user_id)
        except BaseException:
            # Not recorded, so no job will ever move it: do not leave it behind.
            with contextlib.suppress(FileNotFoundError):
                await anyio.Path(received.path).unlink()
            raise
        worker = request.app.state.get("upload_worker")
        if worker is not None:
            worker.wake()
        return upload

    @get("/")
    async def list_uploads(
        self,
        services: Services,
        principal: Principal,
        limit: Limit = 20,
        cursor: CursorParam = None,
    ) -> UploadPage:
        """My uploads, newest first."""
        rows, next_cursor = await newest_first(
            services.pool,
            f"SELECT {_COLUMNS} {_FROM}",
            "u.user_id = $2",
            [principal.user_id],
            alias="u",
            limit=limit,
            cursor=cursor,
        )
        return UploadPage(items=[_upload(r) for r in rows], next_cursor=next_cursor)

    @get("/{upload_id:uuid}")
    async def get_upload(
        self, services: Services, principal: Principal, upload_id: uuid.UUID
    ) -> Upload:
        """One of my uploads with its upload and analysis status (others' are 404)."""
        async with services.pool.acquire() as conn:
            return await fetch_upload(conn, upload_id, principal.user_id)

    @get(
        "/{upload_id:uuid}/peaks",
        responses={
            304: ResponseSpec(
                data_container=None,
                description="Not modified: the client's If-None-Match matches the ETag.",
                generate_examples=False,
            ),
        },
    )
    async def get_peaks(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        principal: Principal,
        upload_id: uuid.UUID,
    ) -> Response[Peaks]:
        """Waveform peaks of an upload at a few zoom levels (min/max per window, -127..127),
        for drawing. Readable by the owner and by members of a mashup that uses the upload
        as an input. Cached: an ETag and `Cache-Control: private`."""
        row = await services.pool.fetchrow(_PEAKS, upload_id, principal.user_id)
        if row is None:
            raise Problem(404, "not_found", "No such upload.")
        if row["peaks"] is None:
            raise Problem(
                409,
                "not_analysed",
                f"The upload has no peaks yet (analysis {row['analysis_status']}).",
            )
        etag = f'"{upload_id.hex}-{row["version"]}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
        if etag in _etags(request.headers.get("if-none-match")):
            return Response(content=b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        peaks = msgspec.json.decode(row["peaks"], type=Peaks)
        return Response(content=peaks, headers=headers)

    @post("/{upload_id:uuid}/retry", status_code=HTTP_202_ACCEPTED)
    async def retry_upload(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        principal: Principal,
        upload_id: uuid.UUID,
    ) -> Upload:
        """Queue a failed upload's move again (its received file was kept)."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                await fetch_upload(conn, upload_id, principal.user_id)
                job = await conn.fetchval(
                    "UPDATE upload_jobs SET status = 'pending', retry_count = 0,"
                    " next_attempt_at = now(), updated_at = now()"
                    " WHERE uploaded_track_id = $1 AND status = 'failed' RETURNING id",
                    upload_id,
                )
                if job is None:
                    raise Problem(409, "not_failed", "Only a failed upload can be retried.")
                await conn.execute(
                    "UPDATE uploaded_tracks SET upload_status = 'pending', updated_at = now()"
                    " WHERE id = $1",
                    upload_id,
                )
            upload = await fetch_upload(conn, upload_id, principal.user_id)
        worker = request.app.state.get("upload_worker")
        if worker is not None:
            worker.wake()
        return upload

    @delete("/{upload_id:uuid}")
    async def delete_upload(
        self, services: Services, principal: Principal, upload_id: uuid.UUID
    ) -> None:
        """Delete one of my uploads: its row, its stored audio and its received file. It leaves
        the mashups it was an input of (with the clips cut from it). Refused while it is in a
        release (remove it there first) and while it is being moved into storage."""
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "SELECT u.format, u.storage_key, u.harmonic_storage_key,"
                    " u.percussive_storage_key,"
                    " (SELECT status::text FROM upload_jobs WHERE uploaded_track_id = u.id"
                    "  ORDER BY created_at DESC LIMIT 1) AS job_status,"
                    " (SELECT local_path FROM upload_jobs WHERE uploaded_track_id = u.id"
                    "  ORDER BY created_at DESC LIMIT 1) AS local_path"
                    " FROM uploaded_tracks u WHERE u.id = $1 AND u.user_id = $2 FOR UPDATE",
                    upload_id,
                    principal.user_id,
                )
                if row is None:
                    raise Problem(404, "not_found", "No such upload.")
                if row["job_status"] == "uploading":
                    # The mover would store the object after we deleted it: an orphan.
                    raise Problem(
                        409, "upload_busy", "The upload is being stored; try again in a moment."
                    )
                if await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM release_tracks WHERE uploaded_track_id = $1)",
                    upload_id,
                ):
                    raise Problem(
                        409, "in_release", "The upload is a track of a release; remove it there."
                    )
                mashups = [
                    r["mashup_id"]
                    for r in await conn.fetch(
                        "UPDATE mashups SET updated_at = clock_timestamp() WHERE id IN"
                        " (SELECT mashup_id FROM mashup_input_tracks"
                        "  WHERE uploaded_track_id = $1) RETURNING id AS mashup_id",
                        upload_id,
                    )
                ]
                # Inputs and jobs go with the row (ON DELETE CASCADE).
                await conn.execute("DELETE FROM uploaded_tracks WHERE id = $1", upload_id)
        # After the commit: the rows no longer point at the files, so losing a file here can
        # only leave an orphan, never a row without its audio.
        storage = storage_from_settings(services.settings)
        key = row["storage_key"] or new_key("uploads", principal.user_id, upload_id, row["format"])
        await storage.delete(key)
        for stem_object in (row["harmonic_storage_key"], row["percussive_storage_key"]):
            if stem_object:
                await storage.delete(stem_object)
        if row["local_path"]:
            with contextlib.suppress(OSError):
                await anyio.Path(row["local_path"]).unlink(missing_ok=True)
        for mashup_id in mashups:
            await mashups_live.publish_sync(services, mashup_id)
