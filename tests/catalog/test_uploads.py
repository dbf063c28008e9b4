"""Uploads against the running server: real audio in four formats, refusals, retries."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.catalog.helpers import audio_bytes, make_user
from tests.conftest import StartServer
from tests.support import ServerProcess, assert_problem, eventually
from tests.support import TestUser as User

MIME = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "ogg": "audio/ogg"}


async def upload(
    http: httpx.AsyncClient, user: User, payload: bytes, filename: str, **extra: Any
) -> httpx.Response:
    return await http.post(
        "/uploads",
        files={"file": (filename, payload, "application/octet-stream")},
        headers=user.headers,
        **extra,
    )


async def wait_for(
    http: httpx.AsyncClient, user: User, upload_id: str, done: Any, within: float = 60.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await http.get(f"/uploads/{upload_id}", headers=user.headers)
        ).json()
        return body if done(body) else None

    return await eventually(check, within=within, what=f"upload {upload_id} done")


def analysed(body: dict[str, Any]) -> bool:
    return body["analysis_status"] in ("completed", "failed")


def incoming_files(server: ServerProcess) -> set[str]:
    directory = Path(server.data_dir) / "incoming"
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg"])
async def test_upload_is_stored_and_analysed(
    fmt: str, http: httpx.AsyncClient, db: asyncpg.Connection, server: ServerProcess
) -> None:
    user = await make_user(db)
    data = audio_bytes(fmt, seconds=2.0)
    response = await upload(http, user, data, f"my song.{fmt}")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["format"] == fmt and body["mime_type"] == MIME[fmt]
    assert body["file_size_bytes"] == len(data)
    assert body["original_filename"] == f"my song.{fmt}"
    assert body["upload_status"] in ("pending", "uploading", "uploaded")

    done = await wait_for(http, user, body["id"], analysed)
    assert done["upload_status"] == "uploaded" and done["job_status"] == "completed"
    assert done["analysis_status"] == "completed", done["analysis"]
    assert abs(done["duration_seconds"] - 2.0) < 0.1
    assert "bpm_confidence" in done["analysis"]

    key = await db.fetchval(
        "SELECT storage_key FROM uploaded_tracks WHERE id = $1", uuid.UUID(body["id"])
    )
    assert key == f"uploads/{user.id.hex}/{uuid.UUID(body['id']).hex}.{fmt}"
    stored = Path(server.data_dir) / "storage" / key
    assert stored.read_bytes() == data

    # The received copy goes once the stored one is recorded.
    async def received_copy_gone() -> bool:
        return not any(n.startswith(uuid.UUID(body["id"]).hex) for n in incoming_files(server))

    await eventually(received_copy_gone, what="the received copy removed")


def truncated(fmt: str) -> bytes:
    data = audio_bytes(fmt, seconds=2.0)
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    ("filename", "data", "status", "code"),
    [
        ("notes.mp3", b"this is not audio at all, just text " * 100, 415, "unsupported_format"),
        ("image.png", b"\x89PNG\r\n\x1a\n" + bytes(2000), 415, "unsupported_format"),
        ("song.mp3", audio_bytes("wav"), 415, "unsupported_format"),
        ("cut.wav", truncated("wav"), 422, "invalid_audio"),
        ("cut.flac", truncated("flac"), 422, "invalid_audio"),
        ("cut.mp3", truncated("mp3"), 422, "invalid_audio"),
        ("cut.ogg", truncated("ogg"), 422, "invalid_audio"),
        ("empty.wav", b"", 422, "invalid_audio"),
    ],
)
async def test_bad_audio_is_refused_and_nothing_kept(
    filename: str,
    data: bytes,
    status: int,
    code: str,
    http: httpx.AsyncClient,
    db: asyncpg.Connection,
    server: ServerProcess,
) -> None:
    user = await make_user(db)
    before = incoming_files(server)
    response = await upload(http, user, data, filename)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert (
        await db.fetchval("SELECT count(*) FROM uploaded_tracks WHERE user_id = $1", user.id) == 0
    )
    assert await db.fetchval("SELECT count(*) FROM upload_jobs WHERE user_id = $1", user.id) == 0
    assert incoming_files(server) - before == set()


async def test_malformed_requests(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    user = await make_user(db)
    wav = audio_bytes("wav")
    assert (await http.post("/uploads", files={"file": ("a.wav", wav)})).status_code == 401
    as_json = await http.post("/uploads", json={"file": "x"}, headers=user.headers)
    assert_problem(as_json, 415, "unsupported_media_type")
    no_boundary = await http.post(
        "/uploads", content=wav, headers={**user.headers, "content-type": "multipart/form-data"}
    )
    assert_problem(no_boundary, 400, "invalid_upload")
    wrong_field = await http.post("/uploads", files={"audio": ("a.wav", wav)}, headers=user.headers)
    assert_problem(wrong_field, 400, "invalid_upload")
    # A multipart form with a field but no file part (a None filename makes a plain field).
    no_file = await http.post("/uploads", files={"has_stems": (None, "true")}, headers=user.headers)
    assert_problem(no_file, 400, "invalid_upload")
    two_files = await http.post(
        "/uploads",
        files=[("file", ("a.wav", wav)), ("file", ("b.wav", wav))],
        headers=user.headers,
    )
    assert_problem(two_files, 400, "invalid_upload")
    cut_body = await http.post(
        "/uploads",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        + wav[:1000],
        headers={**user.headers, "content-type": "multipart/form-data; boundary=xyz"},
    )
    assert_problem(cut_body, 400, "invalid_upload")
    assert (
        await db.fetchval("SELECT count(*) FROM uploaded_tracks WHERE user_id = $1", user.id) == 0
    )


async def test_uploads_are_private(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner = await make_user(db)
    other = await make_user(db, roles=("admin",))
    first = (await upload(http, owner, audio_bytes("wav"), "a.wav")).json()
    second = (
        await upload(http, owner, audio_bytes("flac"), "b.flac", data={"has_stems": "true"})
    ).json()
    # A client cannot claim stems: they are made by the analysis (the field is ignored).
    assert second["has_stems"] is False
    assert (await http.get(f"/uploads/{first['id']}", headers=other.headers)).status_code == 404
    assert (await http.get(f"/uploads/{uuid.uuid4()}", headers=owner.headers)).status_code == 404
    assert (await http.get("/uploads", headers=other.headers)).json()["items"] == []
    page = (await http.get("/uploads", params={"limit": 1}, headers=owner.headers)).json()
    assert [u["id"] for u in page["items"]] == [second["id"]]
    rest = await http.get(
        "/uploads", params={"limit": 1, "cursor": page["next_cursor"]}, headers=owner.headers
    )
    assert [u["id"] for u in rest.json()["items"]] == [first["id"]]
    assert rest.json()["next_cursor"] is None
    assert (
        await http.get("/uploads", params={"cursor": "AAAA"}, headers=owner.headers)
    ).status_code == 400
    retry = await http.post(f"/uploads/{first['id']}/retry", headers=owner.headers)
    assert_problem(retry, 409, "not_failed")


async def test_size_limit(start_server: StartServer, db: asyncpg.Connection) -> None:
    server = await start_server(env={"BLENDTUNE_MAX_UPLOAD_BYTES": "150000"})
    user = await make_user(db)
    big = audio_bytes("wav", seconds=3.0)  # about 530 kB
    small = audio_bytes("wav", seconds=0.5)  # about 88 kB
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        refused = await upload(http, user, big, "big.wav")
        assert refused.status_code == 413
        assert refused.json()["code"] == "upload_too_large"

        # Without Content-Length the limit holds on the bytes actually streamed.
        boundary = "b0undary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"'
                "\r\nContent-Type: audio/wav\r\n\r\n"
            ).encode()
            + big
            + f"\r\n--{boundary}--\r\n".encode()
        )

        async def chunks() -> Any:
            for i in range(0, len(body), 16384):
                yield body[i : i + 16384]

        streamed = await http.post(
            "/uploads",
            content=chunks(),
            headers={**user.headers, "content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert streamed.status_code == 413
        assert (await upload(http, user, small, "small.wav")).status_code == 202
    assert (
        await db.fetchval("SELECT count(*) FROM uploaded_tracks WHERE user_id = $1", user.id) == 1
    )
    assert {p.suffix for p in (Path(server.data_dir) / "incoming").iterdir()} <= {".wav"}


async def test_failed_moves_retry_with_backoff_then_succeed(
    start_server: StartServer, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # The storage directory cannot be created while a plain file sits where its parent
    # should be: a real write failure, not a mock.
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")
    server = await start_server(
        env={
            "BLENDTUNE_STORAGE_DIR": str(blocker / "storage"),
            "BLENDTUNE_UPLOAD_RETRY_BASE_SECONDS": "0.2",
            "BLENDTUNE_UPLOAD_RETRY_MAX_SECONDS": "0.5",
            "BLENDTUNE_UPLOAD_POLL_SECONDS": "0.1",
            "BLENDTUNE_UPLOAD_MAX_ATTEMPTS": "1000",
        }
    )
    user = await make_user(db)
    data = audio_bytes("mp3")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        created = (await upload(http, user, data, "a.mp3")).json()
        failing = await wait_for(http, user, created["id"], lambda b: b["retry_count"] >= 2)
        assert failing["upload_status"] in ("pending", "uploading")
        log = await db.fetchval(
            "SELECT error_log FROM upload_jobs WHERE uploaded_track_id = $1",
            uuid.UUID(created["id"]),
        )
        assert "cannot store" in log
        # The received file is still there while the move keeps failing.
        assert any(p.suffix == ".mp3" for p in (Path(server.data_dir) / "incoming").iterdir())

        blocker.unlink()
        blocker.mkdir()
        done = await wait_for(http, user, created["id"], analysed)
        assert done["upload_status"] == "uploaded" and done["job_status"] == "completed"
        metrics = (await http.get("/metrics")).text
    assert 'blendtune_upload_moves_total{result="stored"} 1.0' in metrics
    retries = [
        line
        for line in metrics.splitlines()
        if line.startswith('blendtune_upload_moves_total{result="retry"}')
    ]
    assert float(retries[0].split()[-1]) >= 2
    key = await db.fetchval(
        "SELECT storage_key FROM uploaded_tracks WHERE id = $1", uuid.UUID(created["id"])
    )
    assert (blocker / "storage" / key).read_bytes() == data
    assert list((Path(server.data_dir) / "incoming").iterdir()) == []


async def test_exhausted_retries_fail_keep_the_file_and_can_be_retried(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server(
        env={
            "BLENDTUNE_STORAGE_FAULT": "fail",
            "BLENDTUNE_UPLOAD_RETRY_BASE_SECONDS": "0.05",
            "BLENDTUNE_UPLOAD_POLL_SECONDS": "0.1",
            "BLENDTUNE_UPLOAD_MAX_ATTEMPTS": "3",
        }
    )
    user = await make_user(db)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        created = (await upload(http, user, audio_bytes("ogg"), "a.ogg")).json()
        failed = await wait_for(http, user, created["id"], lambda b: b["job_status"] == "failed")
        assert failed["upload_status"] == "failed" and failed["retry_count"] == 3
        assert failed["analysis_status"] == "pending"
        assert [p.suffix for p in (Path(server.data_dir) / "incoming").iterdir()] == [".ogg"]
        again = await http.post(f"/uploads/{created['id']}/retry", headers=user.headers)
        assert again.status_code == 202 and again.json()["retry_count"] == 0
        assert again.json()["upload_status"] in ("pending", "uploading", "failed")


async def test_unrecorded_received_files_are_swept_at_start(
    start_server: StartServer, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    orphan = incoming / f"{uuid.uuid4().hex}.wav"
    orphan.write_bytes(audio_bytes("wav"))
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    fresh = incoming / f"{uuid.uuid4().hex}.part"
    fresh.write_bytes(b"still arriving")
    await start_server(env={"BLENDTUNE_DATA_DIR": str(tmp_path)})
    await eventually(
        lambda: asyncio.to_thread(lambda: not orphan.exists()), what="the orphan removed"
    )
    assert fresh.exists()


async def test_content_decides_the_format(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    user = await make_user(db)
    for name in ("recording", "take.dat", "../../etc/passwd"):
        response = await upload(http, user, audio_bytes("flac"), name)
        assert response.status_code == 202, (name, response.text)
        assert response.json()["format"] == "flac"
    names = await db.fetch(
        "SELECT original_filename FROM uploaded_tracks WHERE user_id = $1 ORDER BY created_at",
        user.id,
    )
    # The client's name is metadata only, and kept without directories.
    assert [r[0] for r in names] == ["recording", "take.dat", "passwd"]
