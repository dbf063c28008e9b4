"""Receive an audio upload: stream the multipart body to disk, then prove it is audio.

The body is parsed as it arrives (the same ``multipart`` parser Litestar uses) and the file
part is written to the incoming directory in chunks, so a 100 MB upload never sits in
memory. The size limit is enforced on the bytes actually received. The file is then checked
off the event loop by ``dsp.codec.probe_file``: the container must be complete (dsp's
truncation checks, through mmap) and pedalboard must decode its first second.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from dsp import codec
from dsp.errors import AudioError, AudioTooLong, UnsupportedFormat
from server.problems import Problem

# Room for the multipart framing and a few small form fields around the file.
MULTIPART_OVERHEAD: Final = 64 * 1024
_FIELD_LIMIT: Final = 1024
_WRITE_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True)
class Received:
    id: uuid.UUID
    path: Path
    original_filename: str
    size: int
    info: codec.AudioInfo


def clean_filename(name: str) -> str:
    """The client's file name as metadata only: no directories, no control characters."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return (base or "upload")[:255]


async def receive_upload(
    chunks: AsyncIterator[bytes],
    *,
    boundary: str,
    content_length: int | None,
    max_bytes: int,
    directory: Path,
) -> Received:
    """Stream the multipart body into ``directory`` and validate it; the caller owns the file."""
    if content_length is not None and content_length > max_bytes + MULTIPART_OVERHEAD:
        raise _too_large(max_bytes)
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    upload_id = uuid.uuid4()
    partial = directory / f"{upload_id.hex}.part"
    try:
        # Form fields besides the file are accepted and ignored (stems are the server's).
        filename, size, _ = await _stream_to_disk(chunks, boundary, partial, max_bytes)
        fmt, info = await asyncio.to_thread(_probe, partial, filename)
        final = directory / f"{upload_id.hex}.{fmt}"
        await anyio.Path(partial).rename(final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            await anyio.Path(partial).unlink()
        raise
    return Received(
        id=upload_id,
        path=final,
        original_filename=clean_filename(filename),
        size=size,
        info=info,
    )


async def _stream_to_disk(
    chunks: AsyncIterator[bytes], boundary: str, target: Path, max_bytes: int
) -> tuple[str, int, dict[str, str]]:
    fields: dict[str, str] = {}
    filename: str | None = None
    size = 0
    segment: MultipartSegment | None = None
    field = bytearray()
    pending = bytearray()
    out: Any = None
    try:
        with PushMultipartParser(
            boundary.encode(), max_header_size=8192, max_segment_count=16
        ) as parser:
            async for chunk in chunks:
                for part in parser.parse(chunk):
                    if isinstance(part, MultipartSegment):
                        segment = part
                        if part.filename is not None:
                            if part.name != "file" or filename is not None:
                                raise Problem(
                                    400, "invalid_upload", "Send exactly one file, as field 'file'."
                                )
                            filename = part.filename
                            out = await anyio.open_file(target, "wb")
                        else:
                            field.clear()
                    elif part:
                        assert segment is not None
                        if segment.filename is not None:
                            size += len(part)
                            if size > max_bytes:
                                raise _too_large(max_bytes)
                            pending += part
                            if len(pending) >= _WRITE_CHUNK:
                                await out.write(bytes(pending))
                                pending.clear()
                        else:
                            field += part
                            if len(field) > _FIELD_LIMIT:
                                raise Problem(400, "invalid_upload", "A form field is too long.")
                    else:
                        if segment is not None and segment.filename is None and segment.name:
                            fields[segment.name] = field.decode("utf-8", "replace")
                        segment = None
                if parser.closed:
                    break
            if not parser.closed:
                raise Problem(400, "invalid_upload", "The multipart body is incomplete.")
        if out is not None and pending:
            await out.write(bytes(pending))
    except ParserLimitReached:
        raise Problem(400, "invalid_upload", "Too many parts or headers too large.") from None
    except ParserError as exc:
        raise Problem(400, "invalid_upload", f"Malformed multipart body: {exc}") from None
    finally:
        if out is not None:
            await out.aclose()
    if filename is None:
        raise Problem(400, "invalid_upload", "No file: send the audio as multipart field 'file'.")
    if size == 0:
        raise Problem(422, "invalid_audio", "The file is empty.")
    return filename, size, fields


def _probe(path: Path, filename: str) -> tuple[codec.AudioFormat, codec.AudioInfo]:
    """Check the received file is complete audio of an allowed format (runs in a thread).

    dsp's ``probe_file`` maps the file (no read into memory), runs the container checks
    that catch truncation (pedalboard would zero-fill it) and decodes the first second.
    Content decides the format; a known extension that disagrees is refused.
    """
    try:
        with open(path, "rb") as f:
            sniffed = codec.sniff_format(f.read(64))
        if sniffed is None:
            raise UnsupportedFormat("the file is not wav, flac, mp3 or ogg audio")
        known = Path(filename).suffix.lower() in codec.EXTENSIONS
        # The same length limit analysis will apply (and `blendtune analyze`), so a header
        # claiming hours of audio is refused now rather than failing later.
        info = codec.probe_file(
            path,
            filename=filename if known else f"upload.{sniffed}",
            max_bytes=None,
            max_seconds=codec.DEFAULT_MAX_SECONDS,
        )
    except UnsupportedFormat as exc:
        raise Problem(415, "unsupported_format", str(exc)) from None
    except AudioTooLong as exc:
        raise Problem(413, "audio_too_long", f"The audio is too long: {exc}.") from None
    except AudioError as exc:
        raise Problem(422, "invalid_audio", str(exc)) from None
    except (ValueError, RuntimeError, OSError) as exc:
        raise Problem(422, "invalid_audio", f"The file does not decode as audio: {exc}") from None
    return info.format, info


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, "upload_too_large", f"The file is larger than {max_bytes} bytes.")
