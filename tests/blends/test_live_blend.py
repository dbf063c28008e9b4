"""Done-when: two friends on their own clients and different server processes share a blend.

One creates the blend and shares the code; the other joins with it. Both see each other arrive
in the room, see the woven playlist appear, and each one's edit reaches the other; edits the
room's rules forbid are refused with their documented codes.
"""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
import websockets

from rooms import fractional
from tests.blends.client import BlendClient
from tests.blends.support import create_blend, import_taste, join, songs
from tests.conftest import StartServer
from tests.support import make_user


async def test_two_friends_on_two_processes(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    a, b = await start_server(), await start_server()
    alice, bob, carol = await make_user(db), await make_user(db), await make_user(db)
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        await import_taste(on_a, alice, songs("shared", 1) + songs("alice", 20))
        await import_taste(on_b, bob, songs("bob", 20) + songs("shared", 1))

        # Alice creates the blend on process A and opens its room there.
        blend = await create_blend(on_a, alice, "Alice & Bob", playlist_length=12)
        blend_id, code = blend["id"], blend["share_code"]["code"]
        alice_room = await BlendClient.connect(a.ws_url, blend_id, alice.token)
        await alice_room.until_state(lambda s: s.name == "Alice & Bob")

        # Bob joins with the code on process B, then opens the room there.
        joined = await join(on_b, bob, code)
        assert joined.status_code == 200, joined.text
        bob_room = await BlendClient.connect(b.ws_url, blend_id, bob.token)
        # Presence: Bob sees Alice already here; Alice sees Bob arrive.
        assert str(alice.id) in bob_room.present
        await alice_room.until(
            lambda m: m["type"] == "joined" and m["member"]["user_id"] == str(bob.id)
        )

        # Both see the playlist woven from both tastes appear.
        def woven_for_both(state: object) -> bool:
            items = getattr(state, "items", [])
            owners = {i.contributed_by for i in items}
            return len(items) == 12 and owners == {alice.id, bob.id}

        await alice_room.until_state(woven_for_both)
        await bob_room.until_state(woven_for_both)
        assert [i.id for i in alice_room.state.items] == [i.id for i in bob_room.state.items]
        first = alice_room.state.items[0]
        assert first.song.name == "Shared Song 0"
        assert set(first.contributors) == {alice.id, bob.id}
        members = {m.user_id: m.role for m in bob_room.state.members}
        assert members == {alice.id: "owner", bob.id: "member"}

        # Bob's edit reaches Alice: he moves the last track to the top.
        last = bob_room.state.items[-1]
        top = fractional.key_between(None, bob_room.state.items[0].index)
        answer = await bob_room.send_ops([{"op": "reorder", "item": last.id, "index": top}])
        assert answer["type"] == "ack"
        await alice_room.until_state(lambda s: s.items[0].id == last.id)

        # Alice's edit reaches Bob: a reaction and a new name.
        answer = await alice_room.send_ops(
            [
                {"op": "react", "item": last.id, "emoji": "🔥"},
                {"op": "rename", "name": "Road trip"},
            ]
        )
        assert answer["type"] == "ack"
        await bob_room.until_state(
            lambda s: s.name == "Road trip" and s.items[0].reactions == {str(alice.id): "🔥"}
        )
        assert bob_room.state == alice_room.state
        # The REST view follows the room's name, on either process, in the detail and in the
        # list, and reading it writes nothing: the row keeps the name given over REST.
        assert (await on_b.get(f"/blends/{blend_id}", headers=bob.headers)).json()[
            "name"
        ] == "Road trip"
        listed = (await on_a.get("/blends", headers=alice.headers)).json()
        assert [b["name"] for b in listed if b["id"] == blend_id] == ["Road trip"]
        stored = await db.fetchval("SELECT name FROM blends WHERE id = $1", uuid.UUID(blend_id))
        assert stored == "Alice & Bob"

        # Edits the rules forbid: Bob may not rename; nobody may touch a removed track;
        # nobody but the server sends a weave; reactions come from a small set.
        seq_before = await db.fetchval("SELECT seq FROM rooms WHERE id = $1", uuid.UUID(blend_id))
        refused = await bob_room.send_ops([{"op": "rename", "name": "Bob's"}])
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        gone = alice_room.state.items[1].id
        assert (await alice_room.send_ops([{"op": "remove", "item": gone}]))["type"] == "ack"
        await bob_room.until_state(lambda s: all(i.id != gone for i in s.items))
        stale = await bob_room.send_ops([{"op": "react", "item": gone, "emoji": "👍"}])
        assert stale["type"] == "error" and stale["code"] == "not_found"
        pizza = await bob_room.send_ops([{"op": "react", "item": last.id, "emoji": "🍕"}])
        assert pizza["type"] == "error" and pizza["code"] == "invalid"
        forged = await bob_room.send_ops(
            [
                {
                    "op": "sync",
                    "name": "x",
                    "default_name": "x",
                    "owner_id": str(bob.id),
                    "settings": {"member_limit": 10, "playlist_length": 50},
                    "members": [],
                }
            ]
        )
        assert forged["type"] == "error" and forged["code"] == "forbidden"
        # Only the removal changed the room.
        assert (
            await db.fetchval("SELECT seq FROM rooms WHERE id = $1", uuid.UUID(blend_id))
            == seq_before + 1
        )

        # A non-member is turned away; so is a room that does not exist.
        for room_id, code_expected in ((blend_id, 4403), (str(uuid.uuid4()), 4404)):
            ws = await websockets.connect(f"{b.ws_url}/rooms/blend/{room_id}")
            await ws.send(json.dumps({"type": "hello", "v": 1, "token": carol.token}))
            try:
                await ws.recv()
                raise AssertionError("expected the server to close the socket")
            except websockets.ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == code_expected

        # Bob leaves over REST: the room learns it from the server, and his edits stop.
        assert (
            await on_b.post(f"/blends/{blend_id}/leave", headers=bob.headers)
        ).status_code == 204
        await alice_room.until_state(lambda s: [m.user_id for m in s.members] == [alice.id])
        after = await bob_room.send_ops([{"op": "remove", "item": last.id}])
        assert after["type"] == "error" and after["code"] == "forbidden"
        await alice_room.close()
        await bob_room.close()
