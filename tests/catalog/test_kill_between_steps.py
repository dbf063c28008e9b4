"""A process killed (SIGKILL) between the statements of a job's state change leaves all of
the change or none of it, and another process finishes the job (issue #16).

Each case stops the upload worker of a real server process at a pause point inside the
transaction that changes ``upload_jobs`` and ``uploaded_tracks`` together
(``BLENDTUNE_FAULT_PAUSE``, server/faults.py), kills it there, and reads both rows. Written
as two statements without a transaction, the failed move left the job ``failed`` and its
upload ``uploading`` forever; the stored move, a ``completed`` job over an upload still
``uploading``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from server.settings import FaultPoint
from tests.catalog.helpers import audio_bytes, make_user, upload_to, upload_worker_env
from tests.conftest import StartServer
from tests.support import ServerProcess, eventually

# The (job, upload) pairs a finished state change can leave; anything else is half a change.
WHOLE = {
    ("pending", "pending"),
    ("uploading", "uploading"),
    ("completed", "uploaded"),
    ("failed", "failed"),
}


async def _pair(db: asyncpg.Connection, upload_id: uuid.UUID) -> tuple[str, str]:
    row = await db.fetchrow(
        "SELECT j.status::text AS job, u.upload_status::text AS upload"
        " FROM upload_jobs j JOIN uploaded_tracks u ON u.id = j.uploaded_track_id"
        " WHERE u.id = $1",
        upload_id,
    )
    assert row is not None
    return row["job"], row["upload"]


@pytest.mark.parametrize(
    ("point", "storage_fault"),
    [("upload.stored", None), ("upload.failed", "fail")],
)
async def test_killed_mid_change_leaves_all_or_nothing(
    point: FaultPoint,
    storage_fault: str | None,
    start_server: StartServer,
    server: ServerProcess,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    env = upload_worker_env(server, tmp_path)
    storage = Path(env["BLENDTUNE_STORAGE_DIR"])
    paused = {**env, "BLENDTUNE_FAULT_PAUSE": point, "BLENDTUNE_UPLOAD_MAX_ATTEMPTS": "1"}
    if storage_fault is not None:
        paused["BLENDTUNE_STORAGE_FAULT"] = storage_fault
    first = await start_server(env=paused)
    user = await make_user(db)
    data = audio_bytes("flac", seconds=1.0)
    upload_id = await upload_to(first, user, data)

    async def paused_there() -> bool:
        return f"paused at fault point {point}" in first.log_path.read_text(errors="replace")

    await eventually(paused_there, within=60, what=f"the worker paused at {point}")
    first.kill()
    # The whole transaction is gone: both rows are as the claim left them.
    assert await _pair(db, upload_id) == ("uploading", "uploading")
    assert [p.read_bytes() for p in (tmp_path / "incoming").iterdir()] == [data]

    # A healthy process takes the job over once its lease has run out and finishes it.
    await start_server(env=env)

    async def finished() -> tuple[str, str] | None:
        pair = await _pair(db, upload_id)
        assert pair in WHOLE, pair
        return pair if pair == ("completed", "uploaded") else None

    await eventually(finished, within=60, what="the job finished by the second process")
    key = await db.fetchval("SELECT storage_key FROM uploaded_tracks WHERE id = $1", upload_id)
    assert (storage / key).read_bytes() == data

    # The incoming file goes once the move is committed (a moment after the rows change).
    async def incoming_empty() -> bool:
        return not any((tmp_path / "incoming").iterdir())

    await eventually(incoming_empty, what="the incoming file removed")
