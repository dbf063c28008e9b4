"""Every read endpoint, many times at once, on a two-connection pool: nothing hangs (issue #16).

A handler that holds a pool connection while something it calls takes another can deadlock
a small pool under concurrency (``GET /blends/{id}`` did, through its room read). The pool
refuses such a nested acquire outright (db/pool.py), so this test finds one as a 500 on
whichever endpoint has it; and with far more requests than connections, every request must
get its answer, none may hang.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
import httpx

from tests.blends.support import create_blend, import_taste, songs
from tests.catalog.helpers import audio_bytes, make_track
from tests.conftest import StartServer
from tests.support import make_user, new_address

AT_ONCE = 8


async def test_every_read_endpoint_at_once_on_a_tiny_pool(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server(
        env={"BLENDTUNE_DB_POOL_SIZE": "2", "BLENDTUNE_DB_ACQUIRE_TIMEOUT_SECONDS": "30"}
    )
    user = await make_user(db, roles=("artist",))
    headers = {**user.headers, "X-Forwarded-For": new_address()}
    async with httpx.AsyncClient(base_url=server.url, timeout=60, headers=headers) as client:
        ids = await _one_of_everything(client, user)
        schema = (await client.get("/schema/openapi.json")).json()
        paths = [_fill(template, ids) for template, ops in schema["paths"].items() if "get" in ops]
        reads = [p for p in paths if p is not None and not p.startswith("/schema")]
        assert len(reads) >= 20, reads  # the schema lists the API's read endpoints

        answers = await asyncio.gather(
            *(client.get(path) for path in reads for _ in range(AT_ONCE)),
            return_exceptions=True,
        )
    failed = [
        (path, answer if isinstance(answer, BaseException) else answer.status_code)
        for path, answer in zip([p for p in reads for _ in range(AT_ONCE)], answers, strict=True)
        if isinstance(answer, BaseException) or answer.status_code >= 500
    ]
    assert failed == []


async def _one_of_everything(client: httpx.AsyncClient, user: Any) -> dict[str, str]:
    """Something real behind every path parameter."""
    track = await make_track(client, user)
    playlist = await client.post("/playlists", json={"name": "Reads"})
    assert playlist.status_code == 201, playlist.text
    await import_taste(client, user, songs("reads", 5))
    blend = await create_blend(client, user, "Reads")
    mashup = await client.post("/mashups", json={"name": "Reads", "target_duration_seconds": 60})
    assert mashup.status_code == 201, mashup.text
    upload = await client.post(
        "/uploads", files={"file": ("a.wav", audio_bytes("wav"), "audio/wav")}
    )
    assert upload.status_code == 202, upload.text
    release = await client.post("/releases", json={"title": "Reads", "genre": "House"})
    assert release.status_code == 201, release.text
    return {
        "track_id": track["id"],
        "playlist_id": playlist.json()["id"],
        "blend_id": blend["id"],
        "mashup_id": mashup.json()["id"],
        "upload_id": upload.json()["id"],
        "release_id": release.json()["id"],
        "user_id": str(user.id),
        "username": user.username,
        "provider": "spotify",
        "time_range": "medium_term",
    }


def _fill(template: str, ids: dict[str, str]) -> str | None:
    """The path with its parameters filled in, or None when one is unknown here."""
    names = re.findall(r"\{(\w+)\}", template)
    if any(name not in ids for name in names):
        return None
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)
