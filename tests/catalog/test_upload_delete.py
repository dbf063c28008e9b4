"""Deleting an upload: the row, the stored audio and the mashup inputs go; refusals change
nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx

from tests.catalog.test_uploads import wait_for
from tests.conftest import StartServer
from tests.mashups.support import (
    MashupClient,
    clip,
    create_mashup,
    join_by_code,
    loop_wav,
    upload_track,
)
from tests.support import ServerProcess, make_user


async def counts(db: asyncpg.Connection) -> tuple[int, int, int]:
    return (
        await db.fetchval("SELECT count(*) FROM uploaded_tracks"),
        await db.fetchval("SELECT count(*) FROM upload_jobs"),
        await db.fetchval("SELECT count(*) FROM mashup_input_tracks"),
    )


async def test_deleting_an_upload_removes_it_everywhere(
    server: ServerProcess, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    owner, friend = await make_user(db), await make_user(db)
    track = await upload_track(http, owner, loop_wav(4.0), "kept.wav")
    gone = await upload_track(http, owner, loop_wav(4.0, pitch_hz=330.0), "gone.wav")
    keys = await db.fetchrow(
        "SELECT storage_key, harmonic_storage_key, percussive_storage_key"
        " FROM uploaded_tracks WHERE id = $1",
        uuid.UUID(gone["id"]),
    )
    assert keys is not None
    stored = Path(server.data_dir) / "storage" / keys["storage_key"]
    stems = [
        Path(server.data_dir) / "storage" / keys[f"{stem}_storage_key"]
        for stem in ("harmonic", "percussive")
    ]
    assert stored.is_file() and all(stem.is_file() for stem in stems)
    mashup = await create_mashup(http, owner)
    for upload in (track, gone):
        added = await http.post(
            f"/mashups/{mashup['id']}/inputs",
            json={"uploaded_track_id": upload["id"]},
            headers=owner.headers,
        )
        assert added.status_code == 201, added.text
    await join_by_code(http, friend, mashup["share_code"]["code"])
    member = await MashupClient.connect(server.ws_url, mashup["id"], friend.token)
    try:
        await member.until_state(lambda s: len(s.inputs) == 2)
        answer = await member.send_ops(
            [
                {"op": "add_clip", "clip": clip("a", track["id"]), "index": "V"},
                {"op": "add_clip", "clip": clip("b", gone["id"], position=8), "index": "k"},
            ]
        )
        assert answer["type"] == "ack", answer

        # Someone else's upload, an unknown one and a malformed id: 404, nothing changes.
        before = await counts(db)
        for who, path in (
            (friend, f"/uploads/{gone['id']}"),
            (owner, f"/uploads/{uuid.uuid4()}"),
            (owner, "/uploads/not-a-uuid"),
        ):
            refused = await http.delete(path, headers=who.headers)
            assert refused.status_code == 404, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
        assert (await http.delete(f"/uploads/{gone['id']}")).status_code == 401
        assert await counts(db) == before and stored.is_file()

        deleted = await http.delete(f"/uploads/{gone['id']}", headers=owner.headers)
        assert deleted.status_code == 204, deleted.text
        assert (await http.get(f"/uploads/{gone['id']}", headers=owner.headers)).status_code == 404
        assert not stored.exists()
        assert not any(stem.exists() for stem in stems)  # the stems go with it
        assert await counts(db) == (before[0] - 1, before[1] - 1, before[2] - 1)
        # The room hears it at once: the input and the clip cut from it are gone.
        await member.until_state(
            lambda s: (
                [t.track_id for t in s.inputs] == [track["id"]]
                and [c.id for c in s.timeline.clips] == ["a"]
            )
        )
        again = await http.delete(f"/uploads/{gone['id']}", headers=owner.headers)
        assert again.status_code == 404
    finally:
        await member.close()


async def test_an_upload_in_a_release_is_not_deleted(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    artist = await make_user(db, roles=("artist",))
    upload = await upload_track(http, artist, loop_wav(3.0), "single.wav")
    release = await http.post(
        "/releases", json={"title": "Single", "genre": "pop"}, headers=artist.headers
    )
    assert release.status_code == 201, release.text
    track = await http.post(
        f"/releases/{release.json()['id']}/tracks",
        json={"title": "Single", "upload_id": upload["id"]},
        headers=artist.headers,
    )
    assert track.status_code == 201, track.text
    before = await counts(db)
    refused = await http.delete(f"/uploads/{upload['id']}", headers=artist.headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "in_release"
    assert await counts(db) == before


async def test_an_upload_being_stored_is_not_deleted(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    # Storage writes hang: the job stays `uploading`, where a delete would race the mover.
    server = await start_server(env={"BLENDTUNE_STORAGE_FAULT": "hang"})
    user = await make_user(db)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        sent = await http.post(
            "/uploads",
            files={"file": ("slow.wav", loop_wav(2.0), "application/octet-stream")},
            headers=user.headers,
        )
        assert sent.status_code == 202, sent.text
        upload_id = sent.json()["id"]
        await wait_for(http, user, upload_id, lambda body: body["job_status"] == "uploading")
        before = await counts(db)
        refused = await http.delete(f"/uploads/{upload_id}", headers=user.headers)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "upload_busy"
        assert await counts(db) == before
