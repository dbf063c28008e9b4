"""A process stopped or killed in the middle of a generation: another process completes it.

A process places the generated timeline in the room, renders it, and hangs storing the output
(``BLENDTUNE_STORAGE_FAULT=hang``). Shut down there, it hands the job back at once; the next
process takes it and is killed in the same place; a third process using the same storage
takes the job over once its lease has run out, and completes it. The member watching the room
sees the timeline arrive once (the later attempts' identical batch is recognised by its op id
and not applied again), then the completion.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import StartServer
from tests.mashups.generation_support import song, store_structure
from tests.mashups.support import MashupClient, create_mashup, upload_track
from tests.support import ServerProcess, eventually, make_user


# Three server processes start one after the other (besides the pair) on a shared machine.
@pytest.mark.timeout(300)
async def test_a_killed_generation_is_completed_by_another_process(
    start_server: StartServer,
    pair: tuple[ServerProcess, ServerProcess],
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    # A storage of their own: only these processes can take this test's job.
    env = {
        "BLENDTUNE_STORAGE_DIR": str(tmp_path / "storage"),
        "BLENDTUNE_MASHUP_GENERATION_LEASE_SECONDS": "2",
        "BLENDTUNE_MASHUP_GENERATION_POLL_SECONDS": "0.2",
    }
    alice = await make_user(db)
    # Uploaded and analysed by the pair, then copied into this test's storage (the pair's
    # processes also analyse every upload, so uploading elsewhere would race them).
    async with httpx.AsyncClient(base_url=pair[0].url, timeout=30) as http:
        mashup_id = (await create_mashup(http, alice, "Survivor", 20))["id"]
        short = ((4, 0.5), (4, 1.0))
        for name, bpm, root_hz in (("a.wav", 120.0, 220.0), ("b.wav", 124.0, 261.6)):
            data, structure = song(bpm, short, root_hz=root_hz)
            upload = await upload_track(http, alice, data, name)
            await store_structure(db, upload["id"], structure)
            added = await http.post(
                f"/mashups/{mashup_id}/inputs",
                json={"uploaded_track_id": upload["id"]},
                headers=alice.headers,
            )
            assert added.status_code == 201, added.text
    shared = Path(pair[0].env["BLENDTUNE_STORAGE_DIR"])
    for key in await db.fetch(
        "SELECT t.storage_key FROM mashup_input_tracks i"
        " JOIN uploaded_tracks t ON t.id = i.uploaded_track_id WHERE i.mashup_id = $1",
        uuid.UUID(mashup_id),
    ):
        copy = tmp_path / "storage" / key["storage_key"]
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / key["storage_key"], copy)

    # A member watching from a process of the pair (another storage: it never takes the job).
    watcher = await MashupClient.connect(pair[0].ws_url, mashup_id, alice.token)
    hanging = {**env, "BLENDTUNE_STORAGE_FAULT": "hang"}

    async def rendering(attempt: int) -> None:
        """Placed and rendered; storing the output hangs."""
        await eventually(
            lambda: db.fetchval(
                "SELECT stage = 'rendering' AND status = 'generating' AND attempts = $2"
                " FROM mashup_generation_jobs WHERE id = $1",
                job_id,
                attempt,
            ),
            within=60,
            what=f"attempt {attempt} reaching its render",
        )

    stopping = await start_server(env=hanging)
    async with httpx.AsyncClient(base_url=stopping.url, timeout=30) as http:
        asked = await http.post(
            f"/mashups/{mashup_id}/generate",
            json={"seed": 3, "target_seconds": 8},
            headers=alice.headers,
        )
    assert asked.status_code == 202, asked.text
    job_id = uuid.UUID(asked.json()["id"])
    await rendering(1)
    await watcher.until_state(lambda s: len(s.timeline.clips) > 0)
    placed = watcher.state.timeline
    # A process that is shut down hands its job back at once (no lease to wait for).
    assert stopping.terminate() == 0
    job = await db.fetchrow(
        "SELECT status::text, detail FROM mashup_generation_jobs WHERE id = $1", job_id
    )
    assert job is not None
    assert (job["status"], job["detail"]) == (
        "pending",
        "handed back by a process that was stopping",
    )

    # The next process takes it at once, and is killed in the same place.
    doomed = await start_server(env=hanging)
    await rendering(2)
    doomed.kill()
    assert (
        await db.fetchval(
            "SELECT generation_status::text FROM mashups WHERE id = $1", uuid.UUID(mashup_id)
        )
        == "generating"
    )

    rescuer = await start_server(env=env)

    def done(state: object) -> bool:
        g = getattr(state, "generation", None)
        return g is not None and g.id == str(job_id) and g.status == "completed"

    await watcher.until_state(done, within=120)
    job = await db.fetchrow(
        "SELECT status::text, attempts, detail, output_storage_key FROM mashup_generation_jobs"
        " WHERE id = $1",
        job_id,
    )
    assert job is not None
    assert (job["status"], job["attempts"]) == ("completed", 3)
    assert "taken over" in job["detail"]
    assert (tmp_path / "storage" / job["output_storage_key"]).is_file()
    assert watcher.state.timeline == placed
    placing = [ops for _, ops in watcher.generation_batches if ops[0]["op"] == "generated"]
    assert len(placing) == 1  # the later attempts' identical batch was not applied again
    versions = [
        op["generation"]["version"]
        for _, ops in watcher.generation_batches
        for op in ops
        if op["op"] == "generation"
    ]
    assert versions == sorted(versions) and versions[-1] >= 300  # the third attempt finished
    async with httpx.AsyncClient(base_url=rescuer.url, timeout=30) as http:
        served = await http.get(f"/mashups/{mashup_id}/export", headers=alice.headers)
    assert served.status_code == 200 and served.headers["content-type"] == "audio/flac"
    await watcher.close()
