"""The protocol on one process: join, edits, acks, errors, close codes, limits."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import websockets

from tests.rooms.client import join, open_ws
from tests.rooms.conftest import Rooms, StartRoomServer
from tests.support import ServerProcess, eventually


def add(note_id: str, text: str = "x", index: str = "V") -> dict[str, str]:
    return {"op": "add", "id": note_id, "index": index, "text": text}


async def closed_with(ws: websockets.ClientConnection) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


async def test_join_edit_ack_and_fan_out(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, _ = pair
    alice, bob = await notes.user(), await notes.user()
    room = await notes.create((alice, "editor"), (bob, "editor"))
    c1 = await join(a.ws_url, room, alice.token)
    assert c1.welcome["seq"] == 0 and c1.welcome["resumed"] is False
    assert c1.welcome["state"] == {"title": "", "notes": {}}
    assert c1.welcome["role"] == "editor" and c1.welcome["v"] == 1
    c2 = await join(a.ws_url, room, bob.token)
    assert {m["user_id"] for m in c2.welcome["members"]} == {str(alice.id), str(bob.id)}
    joined = await c1.until(lambda m: m["type"] == "joined")
    assert joined["member"]["id"] == c2.member_id

    op_id = await c1.ops([add("n1", "hello")])
    ack = await c1.ack(op_id)
    assert ack == {"type": "ack", "op_id": op_id, "seq": 1, "duplicate": False}
    batch = await c2.until(lambda m: m["type"] == "batch")
    assert batch["seq"] == 1 and batch["author"] == str(alice.id) and batch["op_id"] == op_id
    assert batch["ops"] == [add("n1", "hello")]
    # Durable before the ack: the row is there.
    rows = await notes.ops(room)
    assert [r["seq"] for r in rows] == [1] and await notes.seq(room) == 1

    # Presence reaches the others, not the sender.
    await c2.send({"type": "presence", "state": {"cursor": 3}})
    presence = await c1.until(lambda m: m["type"] == "presence")
    assert presence == {"type": "presence", "id": c2.member_id, "state": {"cursor": 3}}
    # A later joiner sees who is here and their latest presence.
    c3 = await join(a.ws_url, room, alice.token)
    states = {m["id"]: m["state"] for m in c3.welcome["members"]}
    assert states == {c1.member_id: None, c2.member_id: {"cursor": 3}, c3.member_id: None}
    await c3.close()
    await c1.until(lambda m: m["type"] == "left" and m["id"] == c3.member_id)

    await c2.close()
    left = await c1.until(lambda m: m["type"] == "left")
    assert left["id"] == c2.member_id
    await c1.send({"type": "ping"})
    await c1.until(lambda m: m["type"] == "pong")
    await c1.close()


async def test_rejected_ops_change_nothing(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, _ = pair
    alice, viewer = await notes.user(), await notes.user()
    room = await notes.create((alice, "editor"), (viewer, "viewer"))
    c = await join(a.ws_url, room, alice.token)
    first = await c.ops([add("n1")])
    assert (await c.ack(first))["seq"] == 1
    deleted = await c.ops([{"op": "delete", "id": "n1"}])
    assert (await c.ack(deleted))["seq"] == 2

    # An op on something already deleted: rejected with not_found, no seq consumed.
    late = await c.ops([{"op": "edit", "id": "n1", "text": "too late"}])
    error = await c.ack(late)
    assert error["type"] == "error" and error["code"] == "not_found" and error["op_id"] == late
    # A batch is all or nothing: the valid first op is not applied either.
    mixed = await c.ops([add("n2"), {"op": "delete", "id": "nope"}])
    assert (await c.ack(mixed))["code"] == "not_found"
    # Ops that do not fit the kind's schema, or too many of them.
    bad = await c.ops([{"op": "explode"}])
    assert (await c.ack(bad))["code"] == "bad_ops"
    many = await c.ops([add(f"m{i}") for i in range(21)])
    assert (await c.ack(many))["code"] == "too_many_ops"
    empty = await c.ops([])
    assert (await c.ack(empty))["code"] == "too_many_ops"

    # A viewer may not edit.
    v = await join(a.ws_url, room, viewer.token)
    assert v.welcome["state"]["notes"] == {}
    refused = await v.ops([add("v1")])
    assert (await v.ack(refused))["code"] == "forbidden"

    # Malformed JSON, unknown types, wrong fields: an error, and the connection goes on.
    await c.ws.send("{not json")
    assert (await c.until(lambda m: m["type"] == "error"))["code"] == "bad_message"
    await c.send({"type": "teleport"})
    assert (await c.until(lambda m: m["type"] == "error"))["code"] == "unknown_type"
    await c.send({"type": "ops", "op_id": 7, "ops": []})
    assert (await c.until(lambda m: m["type"] == "error"))["code"] == "bad_message"
    await c.send({"type": "ops", "op_id": "x" * 65, "ops": [add("n9")]})
    assert (await c.until(lambda m: m["type"] == "error"))["code"] == "bad_message"
    await c.ws.send(b"\x00binary")
    assert (await c.until(lambda m: m["type"] == "error"))["code"] == "bad_message"
    await c.send({"type": "hello", "v": 1})
    assert (await c.until(lambda m: m["type"] == "error"))["code"] == "bad_message"
    await c.send({"type": "presence", "state": [1, 2]})
    assert (await c.until(lambda m: m["type"] == "error"))["code"] == "bad_message"
    await c.send({"type": "presence", "state": {"blob": "z" * 2000}})
    assert (await c.until(lambda m: m["type"] == "error"))["code"] == "presence_too_large"

    # Still alive, and nothing of the above reached the log.
    ok = await c.ops([{"op": "title", "title": "still here"}])
    assert (await c.ack(ok))["seq"] == 3
    assert [r["seq"] for r in await notes.ops(room)] == [1, 2, 3]
    assert await notes.seq(room) == 3
    await c.close()
    await v.close()


async def test_op_id_sent_twice_applies_once(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, b = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    c = await join(a.ws_url, room, alice.token)
    op_id = await c.ops([add("n1")])
    assert (await c.ack(op_id))["seq"] == 1
    other = await c.ops([add("n2")])
    assert (await c.ack(other))["seq"] == 2
    # The same op id again, on the same connection and after reconnecting to the other
    # process: acknowledged with the original seq, applied once.
    c.acks.clear()
    await c.ops([add("n1")], op_id)
    again = await c.ack(op_id)
    assert again == {"type": "ack", "op_id": op_id, "seq": 1, "duplicate": True}
    await c.close()
    c2 = await join(b.ws_url, room, alice.token, last_seq=2)
    await c2.ops([add("n1")], op_id)
    assert (await c2.ack(op_id))["duplicate"] is True
    # Twice within one group commit too.
    third = uuid.uuid4().hex
    await c2.ops([add("n3")], third)
    await c2.ops([add("n3")], third)
    first = await c2.ack(third)
    assert first["seq"] == 3
    c2.acks.clear()
    second = await c2.ack(third)
    assert second["seq"] == 3 and second["duplicate"] is True
    rows = await notes.ops(room)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert sorted(r["op_id"] for r in rows) == sorted([op_id, other, third])
    await c2.close()


async def test_resume_delivers_exactly_the_missed_batches(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, b = pair
    alice, bob = await notes.user(), await notes.user()
    room = await notes.create((alice, "editor"), (bob, "editor"))
    reader = await join(b.ws_url, room, bob.token)
    writer = await join(a.ws_url, room, alice.token)
    for i in range(3):
        await writer.ack(await writer.ops([add(f"a{i}")]))
    await reader.until_seq(3)
    await reader.close()
    for i in range(4):
        await writer.ack(await writer.ops([add(f"b{i}")]))
    # Resume on either process: exactly seqs 4..7, then live batches.
    for server in (a, b):
        resumed = await join(server.ws_url, room, bob.token, last_seq=3)
        assert resumed.welcome["resumed"] is True and resumed.welcome["state"] is None
        assert resumed.welcome["seq"] == 7
        await resumed.until_seq(7)
        assert resumed.seen == [4, 5, 6, 7]
        assert [b["ops"][0]["id"] for b in resumed.batches] == ["b0", "b1", "b2", "b3"]
        await resumed.close()
    # Already up to date: nothing to replay.
    current = await join(a.ws_url, room, bob.token, last_seq=7)
    assert current.welcome["resumed"] is True and current.welcome["seq"] == 7
    live = await writer.ops([add("c0")])
    await writer.ack(live)
    await current.until_seq(8)
    assert current.seen == [8]
    await current.close()
    await writer.close()


async def test_resume_too_far_back_gets_a_snapshot(
    start_room_server: StartRoomServer, notes: Rooms
) -> None:
    # (Pruned by count alone here: by default the log also keeps a day of batches.)
    env = {"BLENDTUNE_ROOM_OP_ID_HOURS": "0"}
    a, b = await asyncio.gather(start_room_server(env=env), start_room_server(env=env))
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    c = await join(a.ws_url, room, alice.token)
    # Snapshot every 10, keep 20 behind it: after 45 batches, seq 1..~20 are gone.
    for i in range(45):
        await c.ack(await c.ops([add(f"n{i}")]))
    await c.close()
    await eventually(
        lambda: notes.db.fetchval("SELECT seq FROM room_snapshots WHERE room_id = $1", room),
        what="a snapshot",
    )
    rows = await notes.ops(room)
    assert rows[0]["seq"] > 1 and rows[-1]["seq"] == 45
    old = await join(b.ws_url, room, alice.token, last_seq=0)
    assert old.welcome["resumed"] is False and old.welcome["seq"] == 45
    assert len(old.welcome["state"]["notes"]) == 45
    await old.close()
    # A fresh process loads snapshot + log and agrees.
    fresh = await join(b.ws_url, room, alice.token)
    assert fresh.welcome["state"] == old.welcome["state"]
    await fresh.close()


async def test_handshake_close_codes(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, _ = pair
    alice, stranger = await notes.user(), await notes.user()
    room = await notes.create((alice, "editor"))

    async def hello_then_close(path_kind: str, room_id: object, hello: object) -> int | None:
        ws = await open_ws(a.ws_url, path_kind, str(room_id))
        if hello is not None:
            await ws.send(hello if isinstance(hello, str) else json.dumps(hello))
        return await closed_with(ws)

    ok_hello = {"type": "hello", "v": 1, "token": alice.token}
    assert await hello_then_close("notes", room, {"type": "hello", "v": 1, "token": "nope"}) == 4401
    assert await hello_then_close("notes", room, {"type": "hello", "v": 1}) == 4401
    stranger_hello = {"type": "hello", "v": 1, "token": stranger.token}
    assert await hello_then_close("notes", room, stranger_hello) == 4403
    assert await hello_then_close("notes", uuid.uuid4(), ok_hello) == 4404
    assert await hello_then_close("nokind", room, ok_hello) == 4404
    assert await hello_then_close("notes", "not-a-uuid", ok_hello) == 4404
    assert await hello_then_close("notes", room, "{garbage") == 4400
    assert await hello_then_close("notes", room, {"type": "ping"}) == 4400
    assert await hello_then_close("notes", room, {"type": "hello", "v": 99}) == 4400
    assert await hello_then_close("notes", room, None) == 4408  # auth timeout (1 s here)
    # The session cookie works instead of a token in the hello.
    ws = await open_ws(
        a.ws_url, "notes", room, additional_headers={"Cookie": f"bt_session={alice.token}"}
    )
    await ws.send(json.dumps({"type": "hello", "v": 1}))
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert welcome["type"] == "welcome" and welcome["user_id"] == str(alice.id)
    await ws.close()
    assert await notes.ops(room) == []


async def test_other_sites_cannot_open_a_room(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, _ = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    cookie = {"Cookie": f"bt_session={alice.token}"}
    # A page of another site (even a sibling subdomain) is refused at the handshake.
    for origin in ("http://evil.example", "http://127.0.0.1.evil.example"):
        try:
            await open_ws(a.ws_url, "notes", room, origin=origin, additional_headers=cookie)
        except websockets.InvalidStatus as exc:
            assert exc.response.status_code == 403
        else:
            raise AssertionError(f"{origin} was let in")
    # The server's own pages are welcome.
    ws = await open_ws(
        a.ws_url, "notes", room, origin=f"http://127.0.0.1:{a.port}", additional_headers=cookie
    )
    await ws.send(json.dumps({"type": "hello", "v": 1}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
    await ws.close()


async def test_oversized_frame_is_refused(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, _ = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    c = await join(a.ws_url, room, alice.token)
    await c.ops([add("huge", "z" * 20000)])  # the frame limit is 16 KiB here
    assert await c.closed() == 1009
    assert await notes.ops(room) == []


async def test_flood_is_limited_then_closed(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, _ = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    c = await join(a.ws_url, room, alice.token)
    # 100 per second allowed here; 600 at once is a flood.
    for i in range(600):
        await c.send({"type": "ops", "op_id": f"f{i}", "ops": [{"op": "title", "title": str(i)}]})
    codes = []
    try:
        while True:
            message = await c.recv(10)
            if message["type"] == "error":
                codes.append(message["code"])
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == 4429
    assert "rate_limited" in codes

    # The first second's worth went through: accepted before the close, committed after it
    # maybe (the room's queue outlives the connection).
    async def committed() -> list[Any] | None:
        return await notes.ops(room) or None

    rows = await eventually(committed, what="the accepted batches committed")
    assert len(rows) < 600
    # Everything acknowledged is there, once; refused messages are not.
    assert set(c.acks) <= {r["op_id"] for r in rows}
    assert len(rows) == len({r["op_id"] for r in rows}) < 600


async def test_plain_http_on_the_rooms_path_is_refused(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, _ = pair
    async with httpx.AsyncClient(base_url=a.url) as http:
        response = await http.get(f"/rooms/notes/{uuid.uuid4()}")
    assert response.status_code == 426
