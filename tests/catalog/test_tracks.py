"""Catalog tracks: create/edit with children, splits, permissions, search, cursor, plays."""

from __future__ import annotations

import asyncio
import uuid
from typing import TypedDict

import asyncpg
import httpx
import pytest

from tests.catalog.helpers import make_track, make_user, track_body


async def test_create_and_detail_returns_all_children(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    artist = await make_user(db, roles=("artist",))
    body = track_body(
        sections=[
            {"section_name": "chorus", "start_time": 32, "end_time": 64},
            {"section_name": "intro", "start_time": 0, "end_time": 8, "description": "pads"},
        ],
        creators=[
            {
                "creator_name": "John",
                "role": "producer",
                "split_percentage": 60,
                "pro": "ASCAP",
                "contact_email": "john@example.com",
            },
            {"creator_name": "Jane", "role": "composer", "split_percentage": 40},
        ],
        instruments=[
            {"instrument_category": "synth", "instrument_type": "analog", "is_primary": True}
        ],
        samples=[
            {"sample_pack_name": "Drums Vol 1", "is_cleared": False, "clearance_notes": "pending"}
        ],
    )
    created = await http.post("/tracks", json=body, headers=artist.headers)
    assert created.status_code == 201, created.text
    track = created.json()
    assert track["created_by"] == str(artist.id)
    assert [s["section_name"] for s in track["sections"]] == ["intro", "chorus"]
    assert sorted(c["split_percentage"] for c in track["creators"]) == [40.0, 60.0]

    listener = await make_user(db)
    seen = (await http.get(f"/tracks/{track['id']}", headers=listener.headers)).json()
    assert seen["instruments"][0]["is_primary"] is True
    assert seen["samples"][0]["clearance_notes"] == "pending"
    # Contact details are for the owner and admins only.
    assert all(c["contact_email"] is None for c in seen["creators"])
    own = (await http.get(f"/tracks/{track['id']}", headers=artist.headers)).json()
    assert "john@example.com" in [c["contact_email"] for c in own["creators"]]


async def test_split_total_over_100_refused_and_nothing_written(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    artist = await make_user(db, roles=("artist",))
    body = track_body(
        creators=[
            {"creator_name": "A", "split_percentage": 70},
            {"creator_name": "B", "split_percentage": 31},
        ]
    )
    refused = await http.post("/tracks", json=body, headers=artist.headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "split_total_exceeded"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tracks WHERE audio_filename = $1", body["audio_filename"]
        )
        == 0
    )

    track = await make_track(http, artist, creators=[{"creator_name": "A", "split_percentage": 70}])
    too_much = await http.post(
        f"/tracks/{track['id']}/creators",
        json={"creator_name": "B", "split_percentage": 30.01},
        headers=artist.headers,
    )
    assert too_much.status_code == 409
    fits = await http.post(
        f"/tracks/{track['id']}/creators",
        json={"creator_name": "B", "split_percentage": 30},
        headers=artist.headers,
    )
    assert fits.status_code == 201
    assert (
        await db.fetchval(
            "SELECT sum(split_percentage) FROM track_creators WHERE track_id = $1",
            uuid.UUID(track["id"]),
        )
        == 100
    )

    # Concurrent additions cannot both pass (the track row is locked per edit).
    other = await make_track(http, artist)
    results = await asyncio.gather(
        *[
            http.post(
                f"/tracks/{other['id']}/creators",
                json={"creator_name": f"C{i}", "split_percentage": 60},
                headers=artist.headers,
            )
            for i in range(2)
        ]
    )
    assert sorted(r.status_code for r in results) == [201, 409]


async def test_split_trigger_guards_direct_writes(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    artist = await make_user(db, roles=("artist",))
    track = await make_track(http, artist, creators=[{"creator_name": "A", "split_percentage": 90}])
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO track_creators (track_id, creator_name, split_percentage)"
            " VALUES ($1, 'X', 20)",
            uuid.UUID(track["id"]),
        )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM track_creators WHERE track_id = $1", uuid.UUID(track["id"])
        )
        == 1
    )


async def test_edit_permissions_and_roles(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    artist = await make_user(db, roles=("artist",))
    other_artist = await make_user(db, roles=("artist",))
    listener = await make_user(db)
    admin = await make_user(db, roles=("admin",))

    assert (
        await http.post("/tracks", json=track_body(), headers=listener.headers)
    ).status_code == 403
    assert (await http.post("/tracks", json=track_body())).status_code == 401
    track = await make_track(http, artist)
    url = f"/tracks/{track['id']}"

    assert (
        await http.patch(url, json={"title": "Stolen"}, headers=other_artist.headers)
    ).status_code == 403
    assert (
        await http.patch(url, json={"popularity_score": 99}, headers=artist.headers)
    ).status_code == 403
    assert (await http.delete(url, headers=listener.headers)).status_code == 403
    edited = await http.patch(
        url,
        json={
            "title": "Winter Vibes",
            "tempo": 90,
            "sections": [{"section_name": "a", "start_time": 0, "end_time": 4}],
        },
        headers=artist.headers,
    )
    assert edited.status_code == 200
    assert edited.json()["title"] == "Winter Vibes" and edited.json()["tempo"] == 90
    assert len(edited.json()["sections"]) == 1
    reviewed = await http.patch(url, json={"popularity_score": 77.5}, headers=admin.headers)
    assert reviewed.json()["popularity_score"] == 77.5
    assert (await http.get(url, headers=listener.headers)).json()["title"] == "Winter Vibes"

    section_id = edited.json()["sections"][0]["id"]
    assert (
        await http.delete(f"{url}/sections/{section_id}", headers=other_artist.headers)
    ).status_code == 403
    assert (
        await http.delete(f"{url}/sections/{section_id}", headers=artist.headers)
    ).status_code == 204
    assert (
        await http.delete(f"{url}/sections/{section_id}", headers=artist.headers)
    ).status_code == 404
    assert (
        await http.delete(f"{url}/nonsense/{section_id}", headers=artist.headers)
    ).status_code == 404

    assert (await http.delete(url, headers=artist.headers)).status_code == 204
    assert (await http.get(url, headers=listener.headers)).status_code == 404


async def test_bad_input_is_refused(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    artist = await make_user(db, roles=("artist",))
    bad = [
        track_body(title=""),
        track_body(tempo=1000),
        track_body(musical_key="H"),
        track_body(title="a\x00b"),
        track_body(duration=0),
        track_body(isrc="nope"),
        track_body(cover_art_url="javascript:alert(1)"),
        track_body(sections=[{"section_name": "x", "start_time": 10, "end_time": 5}]),
        track_body(creators=[{"creator_name": "x", "split_percentage": 101}]),
        track_body(unknown_field=1),
        track_body(mood=["x"] * 100),
    ]
    for body in bad:
        response = await http.post("/tracks", json=body, headers=artist.headers)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    malformed = await http.post(
        "/tracks",
        content=b"{not json",
        headers={**artist.headers, "content-type": "application/json"},
    )
    assert malformed.status_code == 400
    huge = await http.post(
        "/tracks",
        content=b"x" * (2 * 1024 * 1024),
        headers={**artist.headers, "content-type": "application/json"},
    )
    assert huge.status_code == 413

    first = await make_track(http, artist)
    duplicate = await http.post(
        "/tracks", json=track_body(audio_filename=first["audio_filename"]), headers=artist.headers
    )
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "audio_filename_taken"


class Spec(TypedDict):
    """A track of the search test, as ``make_track`` takes it."""

    title: str
    tempo: int | None
    musical_key: str | None
    scale: str | None
    mood: list[str]
    tags: list[str]
    release_date: str | None


async def test_search_filters_sort_and_cursor(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    artist = await make_user(db, roles=("artist",))
    genre = f"g{uuid.uuid4().hex[:8]}"
    specs: list[Spec] = [
        Spec(
            title="Alpha Sunrise",
            tempo=90,
            musical_key="A",
            scale="minor",
            mood=["calm"],
            tags=["piano"],
            release_date="2023-01-01",
        ),
        Spec(
            title="Beta Storm",
            tempo=128,
            musical_key="C",
            scale="major",
            mood=["dark", "energetic"],
            tags=["synth", "dance"],
            release_date="2024-06-01",
        ),
        Spec(
            title="Gamma Sunrise",
            tempo=128,
            musical_key="C",
            scale="minor",
            mood=["energetic"],
            tags=["synth"],
            release_date=None,
        ),
        Spec(
            title="Delta",
            tempo=None,
            musical_key=None,
            scale=None,
            mood=[],
            tags=[],
            release_date="2022-03-03",
        ),
        Spec(
            title="Epsilon",
            tempo=140,
            musical_key="F#",
            scale="major",
            mood=["dark"],
            tags=["dance"],
            release_date="2025-01-01",
        ),
    ]
    ids = {}
    for spec in specs:
        track = await make_track(http, artist, genre=genre, **spec)
        ids[spec["title"]] = track["id"]

    async def titles(**params: str | int | list[str]) -> list[str]:
        response = await http.get(
            "/tracks", params={"genre": genre, **params}, headers=artist.headers
        )
        assert response.status_code == 200, response.text
        return [t["title"] for t in response.json()["items"]]

    assert sorted(await titles()) == sorted(ids)
    by_tempo = await titles(sort="tempo")
    assert by_tempo[0] == "Alpha Sunrise" and by_tempo[-1] == "Delta" and by_tempo[3] == "Epsilon"
    by_tempo_desc = await titles(sort="tempo", order="desc")
    assert by_tempo_desc[0] == "Epsilon" and by_tempo_desc[-1] == "Delta"
    assert await titles(sort="release_date") == [
        "Epsilon",
        "Beta Storm",
        "Alpha Sunrise",
        "Delta",
        "Gamma Sunrise",
    ]
    assert await titles(sort="release_date", order="asc") == [
        "Delta",
        "Alpha Sunrise",
        "Beta Storm",
        "Epsilon",
        "Gamma Sunrise",
    ]
    assert sorted(await titles(tempo_min=100, tempo_max=130)) == ["Beta Storm", "Gamma Sunrise"]
    assert sorted(await titles(key="C", scale="minor")) == ["Gamma Sunrise"]
    assert sorted(await titles(mood=["dark", "calm"])) == ["Alpha Sunrise", "Beta Storm", "Epsilon"]
    assert sorted(await titles(mood=["dark", "energetic"], mood_match="all")) == ["Beta Storm"]
    assert sorted(await titles(tags=["synth", "dance"], tags_match="all")) == ["Beta Storm"]
    assert sorted(await titles(tags=["piano", "dance"])) == [
        "Alpha Sunrise",
        "Beta Storm",
        "Epsilon",
    ]
    assert sorted(await titles(released_from="2023-01-01", released_to="2024-12-31")) == [
        "Alpha Sunrise",
        "Beta Storm",
    ]
    assert sorted(await titles(q="sunrise")) == ["Alpha Sunrise", "Gamma Sunrise"]
    assert sorted(await titles(q="john producer storm")) == ["Beta Storm"]

    # Keyset pages of 2 cover everything once, in the same order as one big page.
    for sort, order in [
        ("tempo", "asc"),
        ("release_date", "desc"),
        ("popularity", "desc"),
        ("tempo", "desc"),
    ]:
        full = await titles(sort=sort, order=order)
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {
                "genre": genre,
                "sort": sort,
                "order": order,
                "limit": 2,
            }
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/tracks", params=params, headers=artist.headers)).json()
            seen += [t["title"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == full, (sort, order)

    refused: list[dict[str, str | int]] = [
        {"cursor": "!!!"},
        {"cursor": "bm9wZQ"},
        {"tempo_min": 5},
        {"sort": "bogus"},
        {"limit": 0},
        {"limit": 1000},
        {"key": "H"},
        {"q": "x" * 500},
        {"genre": "a\x00"},
        {"released_from": "tomorrow"},
    ]
    for bad in refused:
        response = await http.get("/tracks", params=bad, headers=artist.headers)
        assert response.status_code == 400, (bad, response.text)
    other_sort = (
        await http.get("/tracks", params={"genre": genre, "limit": 1}, headers=artist.headers)
    ).json()
    mismatch = await http.get(
        "/tracks",
        params={"genre": genre, "sort": "tempo", "cursor": other_sort["next_cursor"]},
        headers=artist.headers,
    )
    assert mismatch.status_code == 400 and mismatch.json()["code"] == "invalid_cursor"
    assert (await http.get("/tracks")).status_code == 401


async def test_play_counts_atomically(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    artist = await make_user(db, roles=("artist",))
    listener = await make_user(db)
    track = await make_track(http, artist)
    await asyncio.gather(
        *[http.post(f"/tracks/{track['id']}/play", headers=listener.headers) for _ in range(20)]
    )
    detail = (await http.get(f"/tracks/{track['id']}", headers=listener.headers)).json()
    assert detail["play_count"] == 20
    assert (
        await http.post(f"/tracks/{uuid.uuid4()}/play", headers=listener.headers)
    ).status_code == 404
    assert (await http.post(f"/tracks/{track['id']}/play")).status_code == 401
