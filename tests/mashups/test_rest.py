"""The mashups REST API on a real server: lifecycle, share codes, roles, inputs, refusals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from server.mashups.service import MAX_INPUTS, MAX_MEMBERS
from tests.mashups.support import (
    PROBLEM,
    create_mashup,
    join_by_code,
    loop_wav,
    upload_track,
)
from tests.support import ServerProcess, assert_problem, make_user


@pytest.fixture
async def on_a(pair: tuple[ServerProcess, ServerProcess]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pair[0].url, timeout=30) as client:
        yield client


async def test_lifecycle_members_and_share_codes(
    on_a: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    owner, friend, viewer, stranger = [await make_user(db) for _ in range(4)]
    created = await create_mashup(on_a, owner, "  Night   drive ", 90)
    mashup_id = created["id"]
    assert created["name"] == "Night drive"
    assert created["my_role"] == "owner" and created["owner_id"] == str(owner.id)
    assert created["target_duration_seconds"] == 90
    assert [m["role"] for m in created["members"]] == ["owner"]
    assert created["timeline"]["clips"] == [] and created["seq"] >= 1  # the room was synced
    code = created["share_code"]["code"]
    room_kind = await db.fetchval("SELECT kind FROM rooms WHERE id = $1", uuid.UUID(mashup_id))
    assert room_kind == "mashup"

    # Only members see it; everyone else gets the same 404 as for an unknown id.
    assert_problem(
        await on_a.get(f"/mashups/{mashup_id}", headers=stranger.headers), 404, "not_found"
    )
    assert_problem(
        await on_a.get(f"/mashups/{uuid.uuid4()}", headers=owner.headers), 404, "not_found"
    )
    assert (await on_a.get(f"/mashups/{mashup_id}")).status_code == 401

    # Friends join by code (forgiving input) as editors; joining twice changes nothing.
    joined = await join_by_code(on_a, friend, code.lower().replace("-", " "))
    assert joined["my_role"] == "editor" and joined["share_code"] is not None
    assert (await join_by_code(on_a, friend, code))["my_role"] == "editor"
    await join_by_code(on_a, viewer, code)
    listed = (await on_a.get("/mashups", headers=friend.headers)).json()
    assert [(m["id"], m["my_role"], m["member_count"]) for m in listed] == [
        (mashup_id, "editor", 3)
    ]
    assert (await on_a.get("/mashups", headers=stranger.headers)).json() == []

    # The owner sets roles; viewers do not see the share code; others cannot set roles.
    url = f"/mashups/{mashup_id}/members/{viewer.id}"
    set_role = await on_a.put(url, json={"role": "viewer"}, headers=owner.headers)
    assert set_role.status_code == 200 and set_role.json()["role"] == "viewer"
    seen = (await on_a.get(f"/mashups/{mashup_id}", headers=viewer.headers)).json()
    assert seen["my_role"] == "viewer" and seen["share_code"] is None
    assert_problem(
        await on_a.put(url, json={"role": "editor"}, headers=friend.headers), 403, "not_owner"
    )
    assert_problem(
        await on_a.put(url, json={"role": "owner"}, headers=owner.headers), 400, "invalid_request"
    )
    own = f"/mashups/{mashup_id}/members/{owner.id}"
    assert_problem(
        await on_a.put(own, json={"role": "viewer"}, headers=owner.headers), 409, "owner_role"
    )
    gone = f"/mashups/{mashup_id}/members/{stranger.id}"
    assert_problem(
        await on_a.put(gone, json={"role": "viewer"}, headers=owner.headers),
        404,
        "member_not_found",
    )

    # Rotation: the old code stops working at once; revocation: no code works.
    rotated = await on_a.post(f"/mashups/{mashup_id}/share-code", headers=owner.headers)
    assert rotated.status_code == 200 and rotated.json()["code"] != code
    assert_problem(
        await on_a.post(f"/mashups/{mashup_id}/share-code", headers=friend.headers),
        403,
        "not_owner",
    )
    assert_problem(
        await on_a.post("/mashups/join", json={"code": code}, headers=stranger.headers),
        404,
        "invalid_share_code",
    )
    revoked = await on_a.delete(f"/mashups/{mashup_id}/share-code", headers=owner.headers)
    assert revoked.status_code == 204
    assert_problem(
        await on_a.post(
            "/mashups/join", json={"code": rotated.json()["code"]}, headers=stranger.headers
        ),
        404,
        "invalid_share_code",
    )
    assert (await on_a.get(f"/mashups/{mashup_id}", headers=owner.headers)).json()[
        "share_code"
    ] is None

    # The owner removes a member; a member leaves; the owner cannot leave.
    removed = await on_a.delete(f"/mashups/{mashup_id}/members/{viewer.id}", headers=owner.headers)
    assert removed.status_code == 204
    assert_problem(
        await on_a.get(f"/mashups/{mashup_id}", headers=viewer.headers), 404, "not_found"
    )
    assert_problem(
        await on_a.delete(f"/mashups/{mashup_id}/members/{owner.id}", headers=friend.headers),
        403,
        "not_owner",
    )
    left = await on_a.delete(f"/mashups/{mashup_id}/members/{friend.id}", headers=friend.headers)
    assert left.status_code == 204
    assert_problem(
        await on_a.delete(f"/mashups/{mashup_id}/members/{owner.id}", headers=owner.headers),
        409,
        "owner_cannot_leave",
    )

    # Rename (owner only), then delete: the room goes with it.
    renamed = await on_a.patch(
        f"/mashups/{mashup_id}", json={"name": "Dawn"}, headers=owner.headers
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Dawn"
    assert_problem(
        await on_a.delete(f"/mashups/{mashup_id}", headers=stranger.headers), 404, "not_found"
    )
    assert (await on_a.delete(f"/mashups/{mashup_id}", headers=owner.headers)).status_code == 204
    assert await db.fetchval("SELECT count(*) FROM rooms WHERE id = $1", uuid.UUID(mashup_id)) == 0
    assert_problem(await on_a.get(f"/mashups/{mashup_id}", headers=owner.headers), 404, "not_found")


async def test_input_tracks(on_a: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner, editor, viewer = [await make_user(db) for _ in range(3)]
    created = await create_mashup(on_a, owner)
    mashup_id = created["id"]
    await join_by_code(on_a, editor, created["share_code"]["code"])
    await join_by_code(on_a, viewer, created["share_code"]["code"])
    await on_a.put(
        f"/mashups/{mashup_id}/members/{viewer.id}", json={"role": "viewer"}, headers=owner.headers
    )
    track = await upload_track(on_a, editor, loop_wav(3.0))
    url = f"/mashups/{mashup_id}/inputs"

    # Only your own uploads, only when stored and analysed, once; viewers cannot add.
    assert_problem(
        await on_a.post(url, json={"uploaded_track_id": track["id"]}, headers=owner.headers),
        404,
        "track_not_found",
    )
    viewer_track = await upload_track(on_a, viewer, loop_wav(3.0))
    assert_problem(
        await on_a.post(
            url, json={"uploaded_track_id": viewer_track["id"]}, headers=viewer.headers
        ),
        403,
        "forbidden",
    )
    pending = await db.fetchval(
        "INSERT INTO uploaded_tracks (user_id, original_filename, file_size_bytes, mime_type,"
        " format) VALUES ($1, 'x.wav', 10, 'audio/wav', 'wav') RETURNING id",
        editor.id,
    )
    assert_problem(
        await on_a.post(url, json={"uploaded_track_id": str(pending)}, headers=editor.headers),
        409,
        "track_not_ready",
    )
    added = await on_a.post(url, json={"uploaded_track_id": track["id"]}, headers=editor.headers)
    assert added.status_code == 201, added.text
    assert added.json()["owner_id"] == str(editor.id)
    assert added.json()["duration_seconds"] == pytest.approx(3.0, abs=0.02)
    assert_problem(
        await on_a.post(url, json={"uploaded_track_id": track["id"]}, headers=editor.headers),
        409,
        "already_input",
    )
    detail = (await on_a.get(f"/mashups/{mashup_id}", headers=viewer.headers)).json()
    assert [i["uploaded_track_id"] for i in detail["inputs"]] == [track["id"]]

    # The viewer cannot withdraw it; its uploader can; the owner can withdraw anyone's.
    one = f"{url}/{track['id']}"
    assert_problem(await on_a.delete(one, headers=viewer.headers), 403, "forbidden")
    assert (await on_a.delete(one, headers=editor.headers)).status_code == 204
    assert_problem(await on_a.delete(one, headers=editor.headers), 404, "input_not_found")
    await on_a.post(url, json={"uploaded_track_id": track["id"]}, headers=editor.headers)
    assert (await on_a.delete(one, headers=owner.headers)).status_code == 204

    # A member who leaves takes their tracks along.
    await on_a.post(url, json={"uploaded_track_id": track["id"]}, headers=editor.headers)
    await on_a.delete(f"/mashups/{mashup_id}/members/{editor.id}", headers=editor.headers)
    count = await db.fetchval(
        "SELECT count(*) FROM mashup_input_tracks WHERE mashup_id = $1", uuid.UUID(mashup_id)
    )
    assert count == 0


async def _counts(db: asyncpg.Connection) -> tuple[int, ...]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM mashups), (SELECT count(*) FROM mashup_members),"
        " (SELECT count(*) FROM mashup_input_tracks), (SELECT count(*) FROM room_ops),"
        " (SELECT count(*) FROM rooms)"
    )
    assert row is not None
    return tuple(row)


async def test_bad_input_changes_nothing(on_a: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner, stranger = await make_user(db), await make_user(db)
    mashup_id = (await create_mashup(on_a, owner))["id"]
    before = await _counts(db)
    h = owner.headers
    bad_bodies: list[tuple[str, str, Any]] = [
        ("POST", "/mashups", {"name": "x"}),
        ("POST", "/mashups", {"name": "", "target_duration_seconds": 10}),
        ("POST", "/mashups", {"name": "   ", "target_duration_seconds": 10}),
        ("POST", "/mashups", {"name": "a\x00b", "target_duration_seconds": 10}),
        ("POST", "/mashups", {"name": "x", "target_duration_seconds": 0}),
        ("POST", "/mashups", {"name": "x", "target_duration_seconds": 10, "extra": 1}),
        ("POST", "/mashups", "not json"),
        ("POST", "/mashups", ["a list"]),
        ("PATCH", f"/mashups/{mashup_id}", {"target_duration_seconds": "long"}),
        ("POST", f"/mashups/{mashup_id}/inputs", {"uploaded_track_id": "nope"}),
        ("POST", f"/mashups/{mashup_id}/previews", {"start_seconds": -1}),
        ("POST", f"/mashups/{mashup_id}/previews", {"duration_seconds": 0}),
        ("POST", f"/mashups/{mashup_id}/previews", {"duration_seconds": 5, "x": 1}),
        ("POST", "/mashups/join", {"code": "x" * 100}),
    ]
    for method, path, body in bad_bodies:
        kwargs: dict[str, Any] = (
            {"content": body, "headers": {**h, "content-type": "application/json"}}
            if isinstance(body, str)
            else {"json": body, "headers": h}
        )
        response = await on_a.request(method, path, **kwargs)
        assert response.status_code == 400, (method, path, body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)

    # Too long a preview window; an unknown mashup; a non-member.
    previews = f"/mashups/{mashup_id}/previews"
    assert_problem(
        await on_a.post(previews, json={"duration_seconds": 31}, headers=h), 400, "window_too_long"
    )
    assert_problem(
        await on_a.post(f"/mashups/{uuid.uuid4()}/previews", json={}, headers=h), 404, "not_found"
    )
    assert_problem(await on_a.post(previews, json={}, headers=stranger.headers), 404, "not_found")
    assert_problem(
        await on_a.get(f"{previews}/{uuid.uuid4()}", headers=stranger.headers), 404, "not_found"
    )
    assert_problem(
        await on_a.get(f"{previews}/{uuid.uuid4()}", headers=h), 404, "preview_not_found"
    )
    # A malformed id matches no route.
    assert_problem(await on_a.get(f"{previews}/not-a-uuid", headers=h), 404, "not_found")
    assert (await on_a.post(previews, json={})).status_code == 401
    assert_problem(
        await on_a.post(
            f"/mashups/{mashup_id}/inputs",
            json={"uploaded_track_id": str(uuid.uuid4())},
            headers=stranger.headers,
        ),
        404,
        "not_found",
    )
    assert_problem(
        await on_a.delete(f"/mashups/{mashup_id}", headers=stranger.headers), 404, "not_found"
    )
    # Nothing to export yet; strangers cannot export.
    assert_problem(
        await on_a.post(f"/mashups/{mashup_id}/export", headers=h), 409, "empty_timeline"
    )
    export = await on_a.post(f"/mashups/{mashup_id}/export", headers=stranger.headers)
    assert_problem(export, 404, "not_found")
    assert await _counts(db) == before
    status = await db.fetchval(
        "SELECT generation_status::text FROM mashups WHERE id = $1", uuid.UUID(mashup_id)
    )
    assert status == "pending"


async def test_member_and_input_limits(on_a: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner, late = await make_user(db), await make_user(db)
    created = await create_mashup(on_a, owner)
    mashup_id = uuid.UUID(created["id"])
    others = [await make_user(db) for _ in range(MAX_MEMBERS - 1)]
    await db.executemany(
        "INSERT INTO mashup_members (mashup_id, user_id) VALUES ($1, $2)",
        [(mashup_id, u.id) for u in others],
    )
    full = await on_a.post(
        "/mashups/join", json={"code": created["share_code"]["code"]}, headers=late.headers
    )
    assert_problem(full, 409, "mashup_full")
    # A member joining again is not turned away.
    again = await on_a.post(
        "/mashups/join", json={"code": created["share_code"]["code"]}, headers=others[0].headers
    )
    assert again.status_code == 200

    tracks = await db.fetch(
        "INSERT INTO uploaded_tracks (user_id, original_filename, storage_key, file_size_bytes,"
        " mime_type, format, upload_status, analysis_status, duration_seconds)"
        " SELECT $1, 't.wav', 'uploads/x/' || n || '.wav', 10, 'audio/wav', 'wav',"
        " 'uploaded', 'completed', 5 FROM generate_series(1, $2) n RETURNING id",
        owner.id,
        MAX_INPUTS + 1,
    )
    await db.executemany(
        "INSERT INTO mashup_input_tracks (mashup_id, uploaded_track_id) VALUES ($1, $2)",
        [(mashup_id, t["id"]) for t in tracks[:MAX_INPUTS]],
    )
    one_more = await on_a.post(
        f"/mashups/{mashup_id}/inputs",
        json={"uploaded_track_id": str(tracks[-1]["id"])},
        headers=owner.headers,
    )
    assert_problem(one_more, 409, "too_many_inputs")
