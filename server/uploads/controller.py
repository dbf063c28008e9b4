"""REST endpoints of uploads: /uploads (HTTP only: the multipart body, ETags; the rules are
in ``service``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from litestar import Controller, Request, Response, delete, get, post
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.status_codes import HTTP_202_ACCEPTED

from dsp.structure import Peaks
from server.auth import Principal
from server.catalog.common import (
    CursorParam,
    Limit,
)
from server.problems import Problem
from server.services import Services
from server.uploads import service
from server.uploads.receive import receive_upload
from server.uploads.schemas import Upload, UploadPage


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


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
        return await service.record(services, request.app.state, principal.user_id, received)

    @get("/")
    async def list_uploads(
        self,
        services: Services,
        principal: Principal,
        limit: Limit = 20,
        cursor: CursorParam = None,
    ) -> UploadPage:
        """My uploads, newest first."""
        return await service.page(services, principal.user_id, limit, cursor)

    @get("/{upload_id:uuid}")
    async def get_upload(
        self, services: Services, principal: Principal, upload_id: uuid.UUID
    ) -> Upload:
        """One of my uploads with its upload and analysis status (others' are 404)."""
        return await service.read(services, upload_id, principal.user_id)

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
        found = await service.peaks(services, upload_id, principal.user_id)
        headers = {"ETag": found.etag, "Cache-Control": "private, max-age=3600"}
        if found.etag in _etags(request.headers.get("if-none-match")):
            return Response(content=b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        return Response(content=found.peaks, headers=headers)

    @post("/{upload_id:uuid}/retry", status_code=HTTP_202_ACCEPTED)
    async def retry_upload(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        principal: Principal,
        upload_id: uuid.UUID,
    ) -> Upload:
        """Queue a failed upload's move again (its received file was kept)."""
        return await service.retry(services, request.app.state, upload_id, principal.user_id)

    @delete("/{upload_id:uuid}")
    async def delete_upload(
        self, services: Services, principal: Principal, upload_id: uuid.UUID
    ) -> None:
        """Delete one of my uploads: its row, its stored audio and its received file. It leaves
        the mashups it was an input of (with the clips cut from it). Refused while it is in a
        release (remove it there first) and while it is being moved into storage."""
        await service.delete(services, upload_id, principal.user_id)
