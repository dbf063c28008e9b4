"""Releases: drafts, tracks with unique order, submission rules, review, every refusal."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.catalog.helpers import audio_bytes, make_user
from tests.support import TestUser as User
from tests.support import eventually

COVER = "https://cdn.example.com/covers/a.jpg"


async def new_release(http: httpx.AsyncClient, artist: User, **body: Any) -> dict[str, Any]:
    response = await http.post(
        "/releases", json={"title": "First EP", "genre": "House", **body}, headers=artist.headers
    )
    assert response.status_code == 201, response.text
    release: dict[str, Any] = response.json()
    return release


async def add_track(
    http: httpx.AsyncClient, artist: User, release_id: str, **body: Any
) -> httpx.Response:
    return await http.post(
        f"/releases/{release_id}/tracks",
        json={"title": "Song", "duration_seconds": 180, **body},
        headers=artist.headers,
    )


@pytest.fixture
async def people(db: asyncpg.Connection) -> dict[str, User]:
    return {
        "artist": await make_user(db, roles=("artist",)),
        "other": await make_user(db, roles=("artist",)),
        "listener": await make_user(db),
        "admin": await make_user(db, roles=("admin",)),
    }


async def test_full_lifecycle_to_published(
    http: httpx.AsyncClient, people: dict[str, User]
) -> None:
    artist, admin, listener = people["artist"], people["admin"], people["listener"]
    release = await new_release(http, artist)
    assert release["status"] == "draft"
    rid = release["id"]

    # Nothing to review yet: no track, no cover.
    refused = await http.post(f"/releases/{rid}/submit", headers=artist.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "release_incomplete"
    assert "track" in refused.json()["detail"] and "cover art" in refused.json()["detail"]

    for title in ("One", "Two", "Three"):
        assert (await add_track(http, artist, rid, title=title)).status_code == 201
    clash = await add_track(http, artist, rid, title="Dup", track_order=2)
    assert clash.status_code == 409 and clash.json()["code"] == "track_order_taken"
    refused = await http.post(f"/releases/{rid}/submit", headers=artist.headers)
    assert refused.status_code == 409 and "cover art" in refused.json()["detail"]

    current = (await http.get(f"/releases/{rid}", headers=artist.headers)).json()
    ids = [t["id"] for t in current["tracks"]]
    assert [t["track_order"] for t in current["tracks"]] == [1, 2, 3]
    reordered = await http.put(
        f"/releases/{rid}/tracks/order",
        json={"track_ids": [ids[2], ids[0], ids[1]]},
        headers=artist.headers,
    )
    assert reordered.status_code == 200
    assert [t["title"] for t in reordered.json()["tracks"]] == ["Three", "One", "Two"]
    removed = await http.delete(f"/releases/{rid}/tracks/{ids[0]}", headers=artist.headers)
    assert [(t["title"], t["track_order"]) for t in removed.json()["tracks"]] == [
        ("Three", 1),
        ("Two", 2),
    ]

    covered = await http.patch(
        f"/releases/{rid}", json={"cover_art_url": COVER}, headers=artist.headers
    )
    assert covered.json()["cover_art_url"] == COVER
    # Drafts are invisible to others (404, not 403).
    assert (await http.get(f"/releases/{rid}", headers=listener.headers)).status_code == 404

    submitted = await http.post(f"/releases/{rid}/submit", headers=artist.headers)
    assert submitted.status_code == 200 and submitted.json()["status"] == "pending_review"
    assert submitted.json()["submitted_at"] is not None
    locked = await add_track(http, artist, rid, title="Late")
    assert locked.status_code == 409 and locked.json()["code"] == "release_locked"
    assert (
        await http.patch(f"/releases/{rid}", json={"title": "x"}, headers=artist.headers)
    ).status_code == 409

    queue = (await http.get("/releases", params={"scope": "review"}, headers=admin.headers)).json()
    assert rid in [r["id"] for r in queue["items"]]
    assert (
        await http.get("/releases", params={"scope": "review"}, headers=artist.headers)
    ).status_code == 403
    assert (await http.post(f"/releases/{rid}/approve", headers=artist.headers)).status_code == 403
    approved = await http.post(f"/releases/{rid}/approve", headers=admin.headers)
    assert approved.json()["status"] == "published"
    assert approved.json()["reviewed_by"] == str(admin.id)

    # Published: visible to everyone, final.
    public = await http.get(f"/releases/{rid}", headers=listener.headers)
    assert public.status_code == 200 and len(public.json()["tracks"]) == 2
    published = await http.get(
        "/releases", params={"scope": "published", "limit": 100}, headers=listener.headers
    )
    assert published.status_code == 200, published.text
    assert rid in [r["id"] for r in published.json()["items"]]
    for action in ("submit", "approve", "reopen", "withdraw"):
        who = admin if action == "approve" else artist
        response = await http.post(f"/releases/{rid}/{action}", headers=who.headers)
        assert response.status_code == 409, action
        assert response.json()["code"] == "invalid_transition"
    rejected = await http.post(
        f"/releases/{rid}/reject", json={"reason": "late"}, headers=admin.headers
    )
    assert rejected.status_code == 409
    assert (await http.delete(f"/releases/{rid}", headers=artist.headers)).status_code == 409


async def test_reject_reopen_and_withdraw(
    http: httpx.AsyncClient, people: dict[str, User], db: asyncpg.Connection
) -> None:
    artist, admin = people["artist"], people["admin"]
    rid = (await new_release(http, artist, cover_art_url=COVER))["id"]
    await add_track(http, artist, rid)
    assert (await http.post(f"/releases/{rid}/approve", headers=admin.headers)).status_code == 409
    await http.post(f"/releases/{rid}/submit", headers=artist.headers)

    no_reason = await http.post(
        f"/releases/{rid}/reject", json={"reason": ""}, headers=admin.headers
    )
    assert no_reason.status_code == 400
    rejected = await http.post(
        f"/releases/{rid}/reject", json={"reason": "Cover art is blurry"}, headers=admin.headers
    )
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["rejection_reason"] == "Cover art is blurry"
    # A rejected release is not edited in place: it goes back to draft first.
    assert (await add_track(http, artist, rid)).status_code == 409
    assert (
        await http.post(f"/releases/{rid}/reopen", headers=people["other"].headers)
    ).status_code == 404
    reopened = await http.post(f"/releases/{rid}/reopen", headers=artist.headers)
    assert reopened.json()["status"] == "draft"
    assert reopened.json()["rejection_reason"] == "Cover art is blurry"
    await http.post(f"/releases/{rid}/submit", headers=artist.headers)
    withdrawn = await http.post(f"/releases/{rid}/withdraw", headers=artist.headers)
    assert withdrawn.json()["status"] == "draft"
    status = await db.fetchval("SELECT status::text FROM releases WHERE id = $1", uuid.UUID(rid))
    assert status == "draft"
    assert (await http.delete(f"/releases/{rid}", headers=artist.headers)).status_code == 204
    assert (await http.get(f"/releases/{rid}", headers=artist.headers)).status_code == 404


async def test_permissions_and_bad_input(
    http: httpx.AsyncClient, people: dict[str, User], db: asyncpg.Connection
) -> None:
    artist, other, listener = people["artist"], people["other"], people["listener"]
    assert (
        await http.post("/releases", json={"title": "x", "genre": "y"}, headers=listener.headers)
    ).status_code == 403
    assert (await http.post("/releases", json={"title": "x", "genre": "y"})).status_code == 401
    for body in [
        {"title": "", "genre": "y"},
        {"title": "x"},
        {"title": "x", "genre": "y", "cover_art_url": "ftp://x"},
        {"title": "x\x00", "genre": "y"},
        {"title": "x", "genre": "y", "status": "published"},
    ]:
        assert (
            await http.post("/releases", json=body, headers=artist.headers)
        ).status_code == 400, body
    rid = (await new_release(http, artist))["id"]
    assert (
        await http.patch(f"/releases/{rid}", json={"title": "mine"}, headers=other.headers)
    ).status_code == 404
    assert (await add_track(http, other, rid)).status_code == 404
    assert (await http.post(f"/releases/{rid}/submit", headers=other.headers)).status_code == 404
    refused: list[dict[str, object]] = [
        {"title": "t", "duration_seconds": None},
        {"title": "t", "duration_seconds": -1},
        {"title": "t", "duration_seconds": 10, "track_order": 0},
        {"title": "t", "duration_seconds": 10, "isrc": "bad"},
    ]
    for track in refused:
        assert (await add_track(http, artist, rid, **track)).status_code == 400, track
    # Someone else's upload cannot be attached.
    foreign = await http.post(
        "/uploads", files={"file": ("a.wav", audio_bytes("wav"))}, headers=other.headers
    )
    attached = await add_track(http, artist, rid, upload_id=foreign.json()["id"])
    assert attached.status_code == 404
    await add_track(http, artist, rid, title="A")
    await add_track(http, artist, rid, title="B")
    tracks = (await http.get(f"/releases/{rid}", headers=artist.headers)).json()["tracks"]
    for ids in [
        [tracks[0]["id"]],
        [tracks[0]["id"], tracks[0]["id"]],
        [tracks[0]["id"], str(uuid.uuid4())],
    ]:
        response = await http.put(
            f"/releases/{rid}/tracks/order", json={"track_ids": ids}, headers=artist.headers
        )
        assert response.status_code == 409 and response.json()["code"] == "invalid_order"
    orders = await db.fetch(
        "SELECT track_order FROM release_tracks WHERE release_id = $1 ORDER BY 1", uuid.UUID(rid)
    )
    assert [r[0] for r in orders] == [1, 2]
    assert (
        await http.delete(f"/releases/{rid}/tracks/{uuid.uuid4()}", headers=artist.headers)
    ).status_code == 404
    assert (await http.get(f"/releases/{uuid.uuid4()}", headers=artist.headers)).status_code == 404
    assert (
        await http.get("/releases", params={"cursor": "zz"}, headers=artist.headers)
    ).status_code == 400


async def test_submit_waits_in_processing_until_uploads_are_analysed(
    http: httpx.AsyncClient, people: dict[str, User], db: asyncpg.Connection
) -> None:
    artist = people["artist"]
    rid = (await new_release(http, artist, cover_art_url=COVER))["id"]
    created = await http.post(
        "/uploads", files={"file": ("a.wav", audio_bytes("wav", 2.0))}, headers=artist.headers
    )
    upload_id = uuid.UUID(created.json()["id"])
    await eventually(
        lambda: db.fetchval(
            "SELECT analysis_status = 'completed' FROM uploaded_tracks WHERE id = $1", upload_id
        ),
        within=60,
        what="the upload analysed",
    )
    # Pretend a worker is still analysing it (its lease runs for an hour).
    await db.execute(
        "UPDATE uploaded_tracks SET analysis_status = 'analyzing',"
        " updated_at = now() + interval '1 hour' WHERE id = $1",
        upload_id,
    )
    added = await add_track(http, artist, rid, upload_id=str(upload_id), duration_seconds=None)
    assert added.status_code == 201
    assert added.json()["tracks"][0]["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    submitted = await http.post(f"/releases/{rid}/submit", headers=artist.headers)
    assert submitted.json()["status"] == "processing"
    # Let the worker analyse it: the release then moves on to review by itself.
    await db.execute(
        "UPDATE uploaded_tracks SET analysis_status = 'pending', updated_at = now() WHERE id = $1",
        upload_id,
    )

    async def moved_on() -> str | None:
        status: str = await db.fetchval(
            "SELECT status::text FROM releases WHERE id = $1", uuid.UUID(rid)
        )
        return None if status == "processing" else status

    assert await eventually(moved_on, within=60, what="the release out of processing") == (
        "pending_review"
    )
