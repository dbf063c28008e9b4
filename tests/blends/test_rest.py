"""Blends over REST against a real server: create, share codes, joins, members, generation."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid

import asyncpg
import httpx
import pytest

from server.blends.crypto import DecryptionFailed, TokenCipher, associated_data
from tests.blends.support import create_blend, import_taste, join, songs, wait_for_weave
from tests.conftest import StartServer
from tests.support import Backends, make_user

CODE = re.compile(r"^[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}$")
TEST_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="


async def participant_statuses(db: asyncpg.Connection, blend_id: str) -> dict[uuid.UUID, str]:
    rows = await db.fetch(
        "SELECT user_id, status::text FROM blend_participants WHERE blend_id = $1",
        uuid.UUID(blend_id),
    )
    return {row["user_id"]: row["status"] for row in rows}


async def test_create_read_and_list(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner, stranger = await make_user(db), await make_user(db)
    blend = await create_blend(http, owner, "  Road   trip ")
    assert blend["name"] == "Road trip"
    assert blend["settings"] == {"member_limit": 10, "playlist_length": 50}
    assert blend["status"] in ("pending", "processing", "completed")
    assert blend["my_status"] == "accepted" and blend["owner_id"] == str(owner.id)
    assert CODE.match(blend["share_code"]["code"]), blend["share_code"]
    assert [(m["user_id"], m["is_owner"]) for m in blend["members"]] == [(str(owner.id), True)]
    stored = await db.fetchrow("SELECT * FROM blends WHERE id = $1", uuid.UUID(blend["id"]))
    assert stored is not None
    assert stored["share_code"] == blend["share_code"]["code"].replace("-", "")
    # Seven days by default.
    days = (stored["share_code_expires_at"] - stored["created_at"]).total_seconds() / 86400
    assert abs(days - 7) < 0.01

    listed = (await http.get("/blends", headers=owner.headers)).json()
    assert [b["id"] for b in listed] == [blend["id"]] and listed[0]["member_count"] == 1
    assert (await http.get("/blends", headers=stranger.headers)).json() == []

    # Non-members and unknown ids get the same 404.
    hidden = await http.get(f"/blends/{blend['id']}", headers=stranger.headers)
    missing = await http.get(f"/blends/{uuid.uuid4()}", headers=stranger.headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json() and hidden.json()["code"] == "not_found"
    assert (await http.get(f"/blends/{blend['id']}")).status_code == 401


async def test_bad_bodies_are_refused(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner = await make_user(db)
    for body in (
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "ok", "settings": {"member_limit": 1}},
        {"name": "ok", "settings": {"playlist_length": 0}},
        {"name": "ok", "settings": {"playlist_length": 201}},
        {"name": "ok", "colour": "red"},
        {"name": "nul\u0000byte"},
        {"name": "bell\u0007"},
    ):
        response = await http.post("/blends", json=body, headers=owner.headers)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "invalid_request"
    assert await db.fetchval("SELECT count(*) FROM blends WHERE created_by = $1", owner.id) == 0


async def test_join_by_code_is_forgiving_and_idempotent(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    owner, friend, other = await make_user(db), await make_user(db), await make_user(db)
    blend = await create_blend(http, owner)
    code = blend["share_code"]["code"]
    typed = f"  {code.lower().replace('-', ' ')} "
    joined = await join(http, friend, typed)
    assert joined.status_code == 200, joined.text
    body = joined.json()
    assert body["id"] == blend["id"] and body["my_status"] == "accepted"
    assert {m["user_id"] for m in body["members"]} == {str(owner.id), str(friend.id)}
    # Members see the code too, so friends can bring friends.
    assert body["share_code"]["code"] == code
    again = await join(http, friend, code)
    assert again.status_code == 200
    assert (
        await db.fetchval(
            "SELECT count(*) FROM blend_participants WHERE blend_id = $1", uuid.UUID(blend["id"])
        )
        == 2
    )
    assert (await join(http, other, code.replace("-", ""))).status_code == 200


async def test_wrong_expired_and_revoked_codes_get_one_error(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    owner, guest = await make_user(db), await make_user(db)
    blend = await create_blend(http, owner)
    code = blend["share_code"]["code"]
    blend_id = uuid.UUID(blend["id"])
    answers = [await join(http, guest, "garbage!"), await join(http, guest, "ZZZZ-ZZZZ")]

    await db.execute(
        "UPDATE blends SET share_code_expires_at = now() - interval '1 second' WHERE id = $1",
        blend_id,
    )
    answers.append(await join(http, guest, code))  # expired

    rotated = await http.post(f"/blends/{blend_id}/share-code", headers=owner.headers)
    assert rotated.status_code == 200
    new_code = rotated.json()["code"]
    assert CODE.match(new_code) and new_code != code
    answers.append(await join(http, guest, code))  # the code before rotation

    revoked = await http.delete(f"/blends/{blend_id}/share-code", headers=owner.headers)
    assert revoked.status_code == 204
    answers.append(await join(http, guest, new_code))  # revoked
    for answer in answers:
        assert answer.status_code == 404
        assert answer.json() == answers[0].json()
    assert answers[0].json()["code"] == "invalid_share_code"
    detail = (await http.get(f"/blends/{blend_id}", headers=owner.headers)).json()
    assert detail["share_code"] is None and len(detail["members"]) == 1

    # A new code with a chosen lifetime works again.
    fresh = await http.post(
        f"/blends/{blend_id}/share-code", json={"expires_in_days": 1}, headers=owner.headers
    )
    assert fresh.status_code == 200
    assert (await join(http, guest, fresh.json()["code"])).status_code == 200
    bad = await http.post(
        f"/blends/{blend_id}/share-code", json={"expires_in_days": 0}, headers=owner.headers
    )
    assert bad.status_code == 400


async def test_full_blend_refuses_joins(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner, first, second, late = [await make_user(db) for _ in range(4)]
    blend = await create_blend(http, owner, member_limit=3)
    blend_id, code = blend["id"], blend["share_code"]["code"]
    assert (await join(http, first, code)).status_code == 200
    # An invitation holds a slot until it is answered ...
    invite = await http.post(
        f"/blends/{blend_id}/invites", json={"user_id": str(second.id)}, headers=owner.headers
    )
    assert invite.status_code == 201
    reserved = await http.post(
        f"/blends/{blend_id}/invites", json={"user_id": str(late.id)}, headers=owner.headers
    )
    assert reserved.status_code == 409 and reserved.json()["code"] == "blend_full"
    # ... but a join by code only needs an accepted slot, and then the invitee is too late.
    assert (await join(http, late, code)).status_code == 200
    full = await http.post(f"/blends/{blend_id}/accept", headers=second.headers)
    assert full.status_code == 409 and full.json()["code"] == "blend_full"
    refused = await join(http, second, code)
    assert refused.status_code == 409 and refused.json()["code"] == "blend_full"
    # The limit cannot drop below the members present.
    lower = await http.patch(
        f"/blends/{blend_id}", json={"settings": {"member_limit": 2}}, headers=owner.headers
    )
    assert lower.status_code == 409 and lower.json()["code"] == "member_limit_too_low"
    statuses = await participant_statuses(db, blend_id)
    assert statuses == {
        owner.id: "accepted",
        first.id: "accepted",
        late.id: "accepted",
        second.id: "pending",
    }


async def test_only_the_owner_manages_the_blend(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    owner, member, stranger = await make_user(db), await make_user(db), await make_user(db)
    blend = await create_blend(http, owner)
    blend_id = blend["id"]
    assert (await join(http, member, blend["share_code"]["code"])).status_code == 200
    attempts = [
        ("POST", f"/blends/{blend_id}/share-code", None),
        ("DELETE", f"/blends/{blend_id}/share-code", None),
        ("PATCH", f"/blends/{blend_id}", {"name": "mine now"}),
        ("DELETE", f"/blends/{blend_id}/members/{owner.id}", None),
        ("POST", f"/blends/{blend_id}/invites", {"user_id": str(stranger.id)}),
        ("DELETE", f"/blends/{blend_id}", None),
    ]
    for method, url, body in attempts:
        as_member = await http.request(method, url, json=body, headers=member.headers)
        assert as_member.status_code == 403, (method, url, as_member.text)
        assert as_member.json()["code"] == "not_owner"
        as_stranger = await http.request(method, url, json=body, headers=stranger.headers)
        assert as_stranger.status_code == 404, (method, url, as_stranger.text)
    detail = (await http.get(f"/blends/{blend_id}", headers=owner.headers)).json()
    assert detail["name"] == "Friday mix" and detail["share_code"] is not None
    assert len(detail["members"]) == 2

    renamed = await http.patch(
        f"/blends/{blend_id}",
        json={"name": "Sunday mix", "settings": {"playlist_length": 20}},
        headers=owner.headers,
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Sunday mix"
    assert renamed.json()["settings"] == {"member_limit": 10, "playlist_length": 20}


async def test_leave_remove_and_delete(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner, leaver, removed = await make_user(db), await make_user(db), await make_user(db)
    blend = await create_blend(http, owner)
    blend_id = uuid.UUID(blend["id"])
    for user in (leaver, removed):
        assert (await join(http, user, blend["share_code"]["code"])).status_code == 200

    owner_leaves = await http.post(f"/blends/{blend_id}/leave", headers=owner.headers)
    assert owner_leaves.status_code == 409 and owner_leaves.json()["code"] == "owner_cannot_leave"
    assert (await http.post(f"/blends/{blend_id}/leave", headers=leaver.headers)).status_code == 204
    assert (await http.get(f"/blends/{blend_id}", headers=leaver.headers)).status_code == 404
    again = await http.post(f"/blends/{blend_id}/leave", headers=leaver.headers)
    assert again.status_code == 404

    kicked = await http.delete(f"/blends/{blend_id}/members/{removed.id}", headers=owner.headers)
    assert kicked.status_code == 204
    assert (await http.get(f"/blends/{blend_id}", headers=removed.headers)).status_code == 404
    gone = await http.delete(f"/blends/{blend_id}/members/{removed.id}", headers=owner.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "member_not_found"

    # Deleting the blend removes its playlist, participants and room (by trigger).
    await db.execute(
        "INSERT INTO rooms (id, kind) VALUES ($1, 'blend') ON CONFLICT DO NOTHING", blend_id
    )
    assert (await http.delete(f"/blends/{blend_id}", headers=owner.headers)).status_code == 204
    assert await db.fetchval("SELECT count(*) FROM blends WHERE id = $1", blend_id) == 0
    assert await db.fetchval("SELECT count(*) FROM rooms WHERE id = $1", blend_id) == 0
    assert (
        await db.fetchval("SELECT count(*) FROM blend_participants WHERE blend_id = $1", blend_id)
        == 0
    )
    assert (await http.get(f"/blends/{blend_id}", headers=owner.headers)).status_code == 404


async def test_invitations(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner, invitee, decliner = await make_user(db), await make_user(db), await make_user(db)
    blend = await create_blend(http, owner)
    blend_id = blend["id"]
    for user in (invitee, decliner):
        response = await http.post(
            f"/blends/{blend_id}/invites", json={"user_id": str(user.id)}, headers=owner.headers
        )
        assert response.status_code == 201
        assert response.json()["status"] == "pending"
    missing = await http.post(
        f"/blends/{blend_id}/invites", json={"user_id": str(uuid.uuid4())}, headers=owner.headers
    )
    assert missing.status_code == 404 and missing.json()["code"] == "user_not_found"

    # An invitee sees the blend (but not its share code) and can accept or decline.
    listed = (await http.get("/blends", headers=invitee.headers)).json()
    assert [(b["id"], b["my_status"]) for b in listed] == [(blend_id, "pending")]
    seen = (await http.get(f"/blends/{blend_id}", headers=invitee.headers)).json()
    assert seen["my_status"] == "pending" and seen["share_code"] is None
    # Pending invitees may not act as members.
    regen = await http.post(f"/blends/{blend_id}/regenerate", headers=invitee.headers)
    assert regen.status_code == 404

    accepted = await http.post(f"/blends/{blend_id}/accept", headers=invitee.headers)
    assert accepted.status_code == 200 and accepted.json()["my_status"] == "accepted"
    already = await http.post(
        f"/blends/{blend_id}/invites", json={"user_id": str(invitee.id)}, headers=owner.headers
    )
    assert already.status_code == 409 and already.json()["code"] == "already_member"

    assert (
        await http.post(f"/blends/{blend_id}/decline", headers=decliner.headers)
    ).status_code == 204
    assert (await http.get(f"/blends/{blend_id}", headers=decliner.headers)).status_code == 404
    assert (
        await http.post(f"/blends/{blend_id}/decline", headers=decliner.headers)
    ).status_code == 404
    statuses = await participant_statuses(db, blend_id)
    assert statuses == {owner.id: "accepted", invitee.id: "accepted", decliner.id: "declined"}


async def test_provider_tokens_are_encrypted_and_never_returned(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await make_user(db)
    secret_access, secret_refresh = "ya29.secret-access-token", "1//secret-refresh-token"
    response = await http.put(
        "/taste/connections/spotify",
        json={
            "provider_user_id": "spotify-user-1",
            "access_token": secret_access,
            "refresh_token": secret_refresh,
            "token_expires_at": "2030-01-01T00:00:00Z",
            "metadata": {"country": "SE"},
        },
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    listed = await http.get("/taste/connections", headers=user.headers)
    for text in (response.text, listed.text):
        assert "secret-access" not in text and "secret-refresh" not in text
        assert '"access_token"' not in text and '"refresh_token"' not in text
    body = listed.json()[0]
    assert body["has_refresh_token"] is True and body["metadata"] == {"country": "SE"}

    row = await db.fetchrow(
        "SELECT access_token_encrypted, refresh_token_encrypted FROM provider_connections"
        " WHERE user_id = $1",
        user.id,
    )
    assert row is not None
    access, refresh = bytes(row["access_token_encrypted"]), bytes(row["refresh_token_encrypted"])
    assert secret_access.encode() not in access and secret_refresh.encode() not in refresh
    assert len(access) == 12 + len(secret_access) + 16
    cipher = TokenCipher(TEST_KEY)
    ad = associated_data(user.id, "spotify")
    assert cipher.decrypt(access, ad) == secret_access
    assert cipher.decrypt(refresh, ad) == secret_refresh
    # Bound to its row: it does not decrypt as another user's token.
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(access, associated_data(uuid.uuid4(), "spotify"))
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(access[:-1] + bytes([access[-1] ^ 1]), ad)

    assert (
        await http.delete("/taste/connections/spotify", headers=user.headers)
    ).status_code == 204
    assert (await http.get("/taste/connections", headers=user.headers)).json() == []


async def test_taste_import_validation(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    user = await make_user(db)
    tracks = {"tracks": songs("val", 2)}
    not_connected = await http.put(
        "/taste/connections/apple/top-tracks/short_term", json=tracks, headers=user.headers
    )
    assert not_connected.status_code == 404 and not_connected.json()["code"] == "not_connected"
    unknown = await http.put(
        "/taste/connections/tidal",
        json={"provider_user_id": "x", "access_token": "y"},
        headers=user.headers,
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_provider"
    await import_taste(http, user, songs("val", 3))
    bad_range = await http.put(
        "/taste/connections/spotify/top-tracks/forever", json=tracks, headers=user.headers
    )
    assert bad_range.status_code == 404
    too_many = await http.put(
        "/taste/connections/spotify/top-tracks/short_term",
        json={"tracks": songs("many", 101)},
        headers=user.headers,
    )
    assert too_many.status_code == 400
    no_name = await http.put(
        "/taste/connections/spotify/top-tracks/short_term",
        json={"tracks": [{"track_id": "x", "name": "", "artist": "a"}]},
        headers=user.headers,
    )
    assert no_name.status_code == 400
    nul = await http.put(
        "/taste/connections/spotify/top-tracks/short_term",
        json={"tracks": [{"track_id": "x", "name": "a\u0000", "artist": "a"}]},
        headers=user.headers,
    )
    assert nul.status_code == 400
    bad_meta = await http.put(
        "/taste/connections/apple",
        json={"provider_user_id": "x", "access_token": "y", "metadata": {"k": "\u0000"}},
        headers=user.headers,
    )
    assert bad_meta.status_code == 400 and bad_meta.json()["code"] == "invalid_request"
    stored = await http.get(
        "/taste/connections/spotify/top-tracks/medium_term", headers=user.headers
    )
    assert [t["rank"] for t in stored.json()] == [1, 2, 3]


async def test_generation_weaves_members_and_catalog_plays(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    alice, bob = await make_user(db), await make_user(db)
    shared = songs("shared", 2)
    await import_taste(http, alice, shared + songs("alice", 30))
    await import_taste(http, bob, songs("bob", 30) + shared, time_range="short_term")
    # Bob also plays a catalog track: a further source.
    track_id = await db.fetchval(
        "INSERT INTO tracks (title, artist, duration, audio_filename)"
        " VALUES ('Catalog Tune', 'Local Band', 200, $1) RETURNING id",
        f"{uuid.uuid4()}.wav",
    )
    for _ in range(3):
        played = await http.post(f"/tracks/{track_id}/play", headers=bob.headers)
        assert played.status_code == 200
    assert (
        await db.fetchval(
            "SELECT play_count FROM track_plays WHERE user_id = $1 AND track_id = $2",
            bob.id,
            track_id,
        )
        == 3
    )
    mine = (await http.get("/taste/tracks", headers=bob.headers)).json()
    assert any(t["source"] == "catalog" and t["name"] == "Catalog Tune" for t in mine)

    blend = await create_blend(http, alice, playlist_length=20)
    assert (await join(http, bob, blend["share_code"]["code"])).status_code == 200
    woven = await wait_for_weave(http, alice, blend["id"], members=2)
    tracks = woven["tracks"]
    assert len(tracks) == 20
    assert [t["position"] for t in tracks] == list(range(20))
    owners = [t["contributed_by"] for t in tracks]
    assert owners.count(str(alice.id)) == owners.count(str(bob.id)) == 10
    assert all(a != b for a, b in itertools.pairwise(owners))  # no runs
    match = woven["taste_match"]
    assert match["unifying_track"]["name"] == "Shared Song 0"
    assert set(match["unifying_track"]["members"]) == {str(alice.id), str(bob.id)}
    assert tracks[0]["name"] == "Shared Song 0"
    assert sorted(tracks[0]["contributors"]) == sorted([str(alice.id), str(bob.id)])
    assert 0 < match["group"] < 1 and match["pairs"][0]["shared_tracks"] == 2
    rows = await db.fetch(
        "SELECT position, contributors FROM blend_tracks WHERE blend_id = $1 ORDER BY position",
        uuid.UUID(blend["id"]),
    )
    assert len(rows) == 20 and rows[0]["contributors"][0] == uuid.UUID(tracks[0]["contributed_by"])

    # Bob leaves: the playlist is woven again from Alice's taste alone.
    assert (await http.post(f"/blends/{blend['id']}/leave", headers=bob.headers)).status_code == 204
    alone = await wait_for_weave(http, alice, blend["id"], members=1)
    assert {t["contributed_by"] for t in alone["tracks"]} == {str(alice.id)}


async def test_join_failures_are_limited_across_processes(
    start_server: StartServer, backends: Backends, db: asyncpg.Connection
) -> None:
    # Counters of their own (under this run's prefix), shared by these two processes only.
    prefix = f"{backends.redis_prefix}rl{uuid.uuid4().hex[:8]}:"
    env = {"BLENDTUNE_SHARE_CODE_FAILURES_PER_MINUTE": "3", "BLENDTUNE_REDIS_PREFIX": prefix}
    a, b = await asyncio.gather(start_server(env=env), start_server(env=env))
    owner, guesser, honest = await make_user(db), await make_user(db), await make_user(db)
    async with httpx.AsyncClient(base_url=a.url) as on_a, httpx.AsyncClient(base_url=b.url) as on_b:
        blend = await create_blend(on_a, owner)
        code = blend["share_code"]["code"]
        assert (await join(on_a, guesser, "AAAA-AAAA")).status_code == 404
        assert (await join(on_b, guesser, "BBBB-BBBB")).status_code == 404
        assert (await join(on_a, guesser, "CCCC-CCCC")).status_code == 404
        limited = await join(on_b, guesser, "DDDD-DDDD")
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) > 0
        # Once over the limit even the right code is refused, on either process ...
        assert (await join(on_a, guesser, code)).status_code == 429
        # ... and so is anyone else from the same address.
        assert (await join(on_b, honest, code)).status_code == 429
    assert (
        await db.fetchval(
            "SELECT count(*) FROM blend_participants WHERE blend_id = $1", uuid.UUID(blend["id"])
        )
        == 1
    )
