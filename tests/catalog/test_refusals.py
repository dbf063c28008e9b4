"""Every changing endpoint of the music areas refuses the unauthenticated, the malformed and
the oversized, and writes nothing when it does."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests.catalog.helpers import make_track, make_user

COUNTS = """
SELECT (SELECT count(*) FROM tracks) + (SELECT count(*) FROM track_sections)
     + (SELECT count(*) FROM track_creators) + (SELECT count(*) FROM releases)
     + (SELECT count(*) FROM release_tracks) + (SELECT count(*) FROM playlists)
     + (SELECT count(*) FROM playlist_tracks) + (SELECT count(*) FROM playlist_collaborators)
"""


async def _snapshot(db: asyncpg.Connection, ids: dict[str, str]) -> list[Any]:
    return [
        await db.fetchval("SELECT updated_at FROM tracks WHERE id = $1", uuid.UUID(ids["track"])),
        await db.fetchval(
            "SELECT updated_at FROM releases WHERE id = $1", uuid.UUID(ids["release"])
        ),
        await db.fetchval(
            "SELECT updated_at FROM playlists WHERE id = $1", uuid.UUID(ids["playlist"])
        ),
    ]


async def test_refusals_change_nothing(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    artist = await make_user(db, roles=("artist",))
    track = await make_track(http, artist)
    release = (
        await http.post("/releases", json={"title": "R", "genre": "G"}, headers=artist.headers)
    ).json()
    playlist = (
        await http.post(
            "/playlists", json={"name": "P", "is_collaborative": True}, headers=artist.headers
        )
    ).json()
    ids = {"track": track["id"], "release": release["id"], "playlist": playlist["id"]}
    t, r, p = ids["track"], ids["release"], ids["playlist"]
    endpoints = [
        ("POST", "/tracks"),
        ("PATCH", f"/tracks/{t}"),
        ("POST", f"/tracks/{t}/sections"),
        ("POST", f"/tracks/{t}/creators"),
        ("POST", f"/tracks/{t}/instruments"),
        ("POST", f"/tracks/{t}/samples"),
        ("POST", "/releases"),
        ("PATCH", f"/releases/{r}"),
        ("POST", f"/releases/{r}/tracks"),
        ("PUT", f"/releases/{r}/tracks/order"),
        ("POST", f"/releases/{r}/reject"),
        ("POST", "/playlists"),
        ("PATCH", f"/playlists/{p}"),
        ("POST", f"/playlists/{p}/tracks"),
        ("POST", f"/playlists/{p}/collaborators"),
    ]
    before_rows = await db.fetchval(COUNTS)
    before = await _snapshot(db, ids)
    json_headers = {**artist.headers, "content-type": "application/json"}
    for method, url in endpoints:
        anonymous = await http.request(method, url, json={})
        assert anonymous.status_code == 401, (method, url)
        malformed = await http.request(method, url, content=b'{"title": ', headers=json_headers)
        assert malformed.status_code == 400, (method, url, malformed.text)
        wrong_type = await http.request(method, url, json=[1, 2, 3], headers=artist.headers)
        assert wrong_type.status_code == 400, (method, url)
        oversized = await http.request(
            method, url, content=b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}', headers=json_headers
        )
        assert oversized.status_code == 413, (method, url)
        assert oversized.headers["content-type"].startswith("application/problem+json")
    for method, url in [("POST", f"/tracks/{t}/play"), ("DELETE", f"/tracks/{t}")]:
        assert (await http.request(method, url)).status_code == 401
    assert await db.fetchval(COUNTS) == before_rows
    assert await _snapshot(db, ids) == before
