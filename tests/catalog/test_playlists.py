"""Playlists: visibility, collaboration, track order, duplicates, refusals."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests.catalog.helpers import make_track, make_user
from tests.support import TestUser as User


async def new_playlist(http: httpx.AsyncClient, user: User, **body: Any) -> dict[str, Any]:
    response = await http.post("/playlists", json={"name": "Mix", **body}, headers=user.headers)
    assert response.status_code == 201, response.text
    playlist: dict[str, Any] = response.json()
    return playlist


async def test_private_playlists_are_invisible(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    owner, stranger = await make_user(db), await make_user(db)
    private = await new_playlist(http, owner)
    public = await new_playlist(http, owner, name="Open", is_public=True)
    assert private["is_public"] is False and private["owner_id"] == str(owner.id)

    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("POST", "/tracks", {"track_id": str(uuid.uuid4())}),
        ("POST", "/collaborators", {"user_id": str(stranger.id)}),
    ]:
        response = await http.request(
            method, f"/playlists/{private['id']}{suffix}", json=body, headers=stranger.headers
        )
        assert response.status_code == 404, (method, suffix)
    # A public playlist is readable but not editable by others (403: it is visible).
    assert (
        await http.get(f"/playlists/{public['id']}", headers=stranger.headers)
    ).status_code == 200
    assert (
        await http.patch(f"/playlists/{public['id']}", json={"name": "x"}, headers=stranger.headers)
    ).status_code == 403
    mine = (await http.get("/playlists", headers=stranger.headers)).json()["items"]
    assert mine == []
    everyone = (
        await http.get(
            "/playlists", params={"scope": "public", "limit": 100}, headers=stranger.headers
        )
    ).json()
    ids = [p["id"] for p in everyone["items"]]
    assert public["id"] in ids and private["id"] not in ids
    assert (await http.get("/playlists")).status_code == 401

    renamed = await http.patch(
        f"/playlists/{private['id']}",
        json={"name": "Renamed", "is_public": True},
        headers=owner.headers,
    )
    assert renamed.json()["name"] == "Renamed" and renamed.json()["is_public"] is True
    assert (
        await http.get(f"/playlists/{private['id']}", headers=stranger.headers)
    ).status_code == 200
    assert (
        await http.delete(f"/playlists/{private['id']}", headers=owner.headers)
    ).status_code == 204
    assert (await http.get(f"/playlists/{private['id']}", headers=owner.headers)).status_code == 404


async def test_tracks_order_duplicates_and_added_by(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    artist = await make_user(db, roles=("artist",))
    owner = await make_user(db)
    tracks = [(await make_track(http, artist, title=f"T{i}"))["id"] for i in range(4)]
    pid = (await new_playlist(http, owner))["id"]
    url = f"/playlists/{pid}/tracks"
    for track_id in tracks[:3]:
        assert (
            await http.post(url, json={"track_id": track_id}, headers=owner.headers)
        ).status_code == 201
    inserted = await http.post(
        url, json={"track_id": tracks[3], "position": 1}, headers=owner.headers
    )
    assert [t["title"] for t in inserted.json()["tracks"]] == ["T0", "T3", "T1", "T2"]
    assert [t["position"] for t in inserted.json()["tracks"]] == [0, 1, 2, 3]
    assert {t["added_by"] for t in inserted.json()["tracks"]} == {str(owner.id)}

    duplicate = await http.post(url, json={"track_id": tracks[0]}, headers=owner.headers)
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "track_already_in_playlist"
    positions = await db.fetch(
        "SELECT position FROM playlist_tracks WHERE playlist_id = $1 ORDER BY 1", uuid.UUID(pid)
    )
    assert [r[0] for r in positions] == [0, 1, 2, 3]

    moved = await http.patch(f"{url}/{tracks[0]}", json={"position": 3}, headers=owner.headers)
    assert [t["title"] for t in moved.json()["tracks"]] == ["T3", "T1", "T2", "T0"]
    moved = await http.patch(f"{url}/{tracks[2]}", json={"position": 0}, headers=owner.headers)
    assert [t["title"] for t in moved.json()["tracks"]] == ["T2", "T3", "T1", "T0"]
    removed = await http.delete(f"{url}/{tracks[3]}", headers=owner.headers)
    assert [(t["title"], t["position"]) for t in removed.json()["tracks"]] == [
        ("T2", 0),
        ("T1", 1),
        ("T0", 2),
    ]

    assert (
        await http.post(url, json={"track_id": str(uuid.uuid4())}, headers=owner.headers)
    ).status_code == 404
    assert (await http.delete(f"{url}/{tracks[3]}", headers=owner.headers)).status_code == 404
    assert (
        await http.patch(f"{url}/{tracks[3]}", json={"position": 0}, headers=owner.headers)
    ).status_code == 404
    for body in [
        {"track_id": "nope"},
        {"track_id": tracks[3], "position": -1},
        {},
        {"track_id": tracks[3], "x": 1},
    ]:
        assert (await http.post(url, json=body, headers=owner.headers)).status_code == 400, body
    for body in [{"name": ""}, {"name": "a" * 300}, {"is_public": "yes"}, {"cover_image_url": "x"}]:
        assert (
            await http.patch(f"/playlists/{pid}", json=body, headers=owner.headers)
        ).status_code == 400, body

    # Concurrent additions keep positions contiguous and unique.
    more = [(await make_track(http, artist, title=f"C{i}"))["id"] for i in range(6)]
    await asyncio.gather(
        *[http.post(url, json={"track_id": t}, headers=owner.headers) for t in more]
    )
    positions = await db.fetch(
        "SELECT position FROM playlist_tracks WHERE playlist_id = $1 ORDER BY 1", uuid.UUID(pid)
    )
    assert [r[0] for r in positions] == list(range(9))


async def test_collaborators(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    artist = await make_user(db, roles=("artist",))
    owner, friend, stranger = await make_user(db), await make_user(db), await make_user(db)
    track = (await make_track(http, artist))["id"]
    other_track = (await make_track(http, artist))["id"]
    solo = (await new_playlist(http, owner))["id"]
    refused = await http.post(
        f"/playlists/{solo}/collaborators", json={"user_id": str(friend.id)}, headers=owner.headers
    )
    assert refused.status_code == 409 and refused.json()["code"] == "not_collaborative"

    pid = (await new_playlist(http, owner, is_collaborative=True))["id"]
    added = await http.post(
        f"/playlists/{pid}/collaborators", json={"user_id": str(friend.id)}, headers=owner.headers
    )
    assert added.status_code == 201 and added.json()["collaborators"] == [str(friend.id)]
    again = await http.post(
        f"/playlists/{pid}/collaborators", json={"user_id": str(friend.id)}, headers=owner.headers
    )
    assert again.status_code == 409
    nobody = await http.post(
        f"/playlists/{pid}/collaborators",
        json={"user_id": str(uuid.uuid4())},
        headers=owner.headers,
    )
    assert nobody.status_code == 404
    by_friend = await http.post(
        f"/playlists/{pid}/collaborators",
        json={"user_id": str(stranger.id)},
        headers=friend.headers,
    )
    assert by_friend.status_code == 403

    # The collaborator sees the private playlist and edits its tracks, not its settings.
    assert (await http.get(f"/playlists/{pid}", headers=friend.headers)).status_code == 200
    assert pid in [
        p["id"] for p in (await http.get("/playlists", headers=friend.headers)).json()["items"]
    ]
    contributed = await http.post(
        f"/playlists/{pid}/tracks", json={"track_id": track}, headers=friend.headers
    )
    assert contributed.status_code == 201
    assert contributed.json()["tracks"][0]["added_by"] == str(friend.id)
    assert (
        await http.patch(f"/playlists/{pid}", json={"name": "mine now"}, headers=friend.headers)
    ).status_code == 403
    assert (await http.delete(f"/playlists/{pid}", headers=friend.headers)).status_code == 403
    assert (
        await http.post(
            f"/playlists/{pid}/tracks", json={"track_id": other_track}, headers=stranger.headers
        )
    ).status_code == 404

    # Turning collaboration off stops the edits; the owner can still edit.
    await http.patch(f"/playlists/{pid}", json={"is_collaborative": False}, headers=owner.headers)
    assert (
        await http.post(
            f"/playlists/{pid}/tracks", json={"track_id": other_track}, headers=friend.headers
        )
    ).status_code == 403
    await http.patch(f"/playlists/{pid}", json={"is_collaborative": True}, headers=owner.headers)

    # A collaborator may leave; the owner removes collaborators; then the playlist is gone for them.
    assert (
        await http.delete(f"/playlists/{pid}/collaborators/{owner.id}", headers=friend.headers)
    ).status_code == 403
    assert (
        await http.delete(f"/playlists/{pid}/collaborators/{friend.id}", headers=owner.headers)
    ).status_code == 204
    assert (await http.get(f"/playlists/{pid}", headers=friend.headers)).status_code == 404
    assert (
        await http.delete(f"/playlists/{pid}/collaborators/{friend.id}", headers=owner.headers)
    ).status_code == 404
