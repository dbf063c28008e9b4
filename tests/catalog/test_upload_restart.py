"""A process killed in the middle of moving an upload: another process finishes the job."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx

from tests.catalog.helpers import audio_bytes, make_user, upload_to, upload_worker_env
from tests.conftest import StartServer
from tests.support import ServerProcess, eventually


async def wait_until(db: asyncpg.Connection, sql: str, *args: object, within: float = 60) -> None:
    await eventually(lambda: db.fetchval(sql, *args), within=within, what=sql)


async def test_upload_killed_mid_move_completes_after_restart(
    start_server: StartServer, server: ServerProcess, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # Both processes share the incoming directory (as processes on one host do).
    env = upload_worker_env(server, tmp_path)
    storage = Path(env["BLENDTUNE_STORAGE_DIR"])
    first = await start_server(env={**env, "BLENDTUNE_STORAGE_FAULT": "hang"})
    user = await make_user(db)
    data = audio_bytes("flac", seconds=2.0)
    upload_id = await upload_to(first, user, data)

    # The move has started (and hangs) when the process is killed.
    await wait_until(
        db, "SELECT status = 'uploading' FROM upload_jobs WHERE uploaded_track_id = $1", upload_id
    )
    first.kill()
    incoming = tmp_path / "incoming"
    assert [p.read_bytes() for p in incoming.iterdir()] == [data]
    assert (
        await db.fetchval(
            "SELECT upload_status::text FROM uploaded_tracks WHERE id = $1", upload_id
        )
        == "uploading"
    )

    second = await start_server(env=env)
    await wait_until(
        db,
        "SELECT analysis_status = 'completed' FROM uploaded_tracks WHERE id = $1",
        upload_id,
    )
    job = await db.fetchrow(
        "SELECT status::text, retry_count, error_log FROM upload_jobs WHERE uploaded_track_id = $1",
        upload_id,
    )
    assert job is not None
    assert job["status"] == "completed"
    assert job["retry_count"] == 1 and "worker lost" in job["error_log"]
    row = await db.fetchrow(
        "SELECT upload_status::text, storage_key, duration_seconds FROM uploaded_tracks"
        " WHERE id = $1",
        upload_id,
    )
    assert row is not None
    assert row["upload_status"] == "uploaded"
    assert (storage / row["storage_key"]).read_bytes() == data
    assert abs(float(row["duration_seconds"]) - 2.0) < 0.1

    # The incoming file goes once the move is committed (a moment after the rows change).
    async def incoming_empty() -> bool:
        return not any(incoming.iterdir())

    await eventually(incoming_empty, what="the incoming file removed")
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
        seen = (await http.get(f"/uploads/{upload_id}", headers=user.headers)).json()
    assert seen["upload_status"] == "uploaded" and seen["job_status"] == "completed"
