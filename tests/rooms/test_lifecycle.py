"""Heartbeats, idle timeouts, deleted rooms, server-side submissions, metrics."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from db import engine as db_engine
from rooms import api
from rooms.fanout import pack
from rooms.kinds import SERVER_USER_ID, OpRejected
from rooms.names import room_channel
from rooms.store import RoomGone
from server.services import Services, build_services
from server.settings import Settings
from tests.rooms.client import join
from tests.rooms.conftest import Rooms, StartRoomServer
from tests.rooms.notes import Add, Delete, NotesKind, Title, members_key
from tests.support import Backends, ServerProcess, eventually


@pytest.fixture
async def services(backends: Backends) -> AsyncIterator[Services]:
    services = build_services(
        Settings(
            database_url=backends.database_url,
            redis_url=backends.redis_url,
            redis_prefix=backends.redis_prefix,
        )
    )
    await db_engine.start(services.engine, min_size=1, max_size=2)
    yield services
    await services.redis.aclose()
    await db_engine.stop(services.engine)


async def test_idle_connections_are_pinged_then_closed(
    start_room_server: StartRoomServer, notes: Rooms
) -> None:
    server = await start_room_server(
        env={
            "BLENDTUNE_WS_HEARTBEAT_SECONDS": "0.3",
            "BLENDTUNE_WS_IDLE_TIMEOUT_SECONDS": "1.5",
            "BLENDTUNE_WS_ROOM_MAX_MEMBERS": "2",
        }
    )
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    silent = await join(server.ws_url, room, alice.token)
    polite = await join(server.ws_url, room, alice.token)
    # (A third member does not fit: the room holds two here.)
    assert await _hello_close(server.ws_url, room, alice.token) == 4460
    assert (await silent.until(lambda m: m["type"] == "ping"))["type"] == "ping"

    # One that answers every ping stays; one that does not is closed as idle.
    async def answer() -> None:
        while True:
            message = await polite.recv()
            if message["type"] == "ping":
                await polite.send({"type": "pong"})

    keeper = asyncio.create_task(answer())
    assert await silent.closed() == 4408
    assert not keeper.done()
    keeper.cancel()
    await polite.close()


async def test_deleted_room_closes_its_members(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, _ = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    client = await join(a.ws_url, room, alice.token)
    await client.ack(await client.ops([{"op": "title", "title": "soon gone"}]))
    await notes.db.execute("DELETE FROM rooms WHERE id = $1", room)
    await notes.redis.delete(members_key(notes.prefix, room))
    doomed = await client.ops([{"op": "title", "title": "too late"}])
    error = await client.ack(doomed)
    assert error["type"] == "error" and error["code"] == "not_found"
    assert await client.closed() == 4404
    assert await notes.ops(room) == []
    again = await _hello_close(a.ws_url, room, alice.token)
    assert again == 4404


async def _hello_close(base: str, room: uuid.UUID, token: str) -> int | None:
    import websockets

    async with websockets.connect(f"{base}/rooms/notes/{room}") as ws:
        await ws.send(json.dumps({"type": "hello", "v": 1, "token": token}))
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None


async def test_server_submissions_reach_members(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms, services: Services
) -> None:
    a, b = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    kind = NotesKind()
    on_a = await join(a.ws_url, room, alice.token)
    on_b = await join(b.ws_url, room, alice.token)
    seq = await api.submit(
        services, kind, room, [Title("from the server"), Add("s", "V", "t")], "job-1"
    )
    assert seq == 1
    for client in (on_a, on_b):
        await client.until_seq(1)
        batch = client.batches[-1]
        assert batch["author"] == str(SERVER_USER_ID) and batch["op_id"] == "job-1"
        assert batch["ops"][0] == {"op": "title", "title": "from the server"}
    # Idempotent by op id; kind rules apply to the server too (not_found).
    assert await api.submit(services, kind, room, [Title("again")], "job-1") == 1
    with pytest.raises(OpRejected) as rejected:
        await api.submit(services, kind, room, [Delete("nope")], "job-2")
    assert rejected.value.code == "not_found"
    seq, state = await api.read_state(services, kind, room)
    assert seq == 1 and state.title == "from the server" and set(state.notes) == {"s"}
    # A member's edit after the server's continues the same sequence.
    mine = await on_a.ops([{"op": "edit", "id": "s", "text": "mine"}])
    assert (await on_a.ack(mine))["seq"] == 2
    await on_b.until_seq(2)
    with pytest.raises(RoomGone):
        await api.submit(services, kind, uuid.uuid4(), [Title("x")], "job-3")
    await on_a.close()
    await on_b.close()


async def test_metrics_are_exported(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, _ = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    timed_before = metric(await metrics_text(a), "blendtune_room_publish_to_send_seconds_count")
    client = await join(a.ws_url, room, alice.token)
    other = await join(a.ws_url, room, alice.token)
    await client.ack(await client.ops([{"op": "title", "title": "m"}]))
    await other.until_seq(1)
    await client.send({"type": "nonsense"})
    await client.until(lambda m: m["type"] == "error")
    text = await metrics_text(a)
    # The batch sent to the other member was timed from publish to socket.
    assert metric(text, "blendtune_room_publish_to_send_seconds_count") > timed_before
    await other.close()
    assert "blendtune_room_connections " in text
    assert "blendtune_rooms_active " in text
    assert 'blendtune_room_messages_in_total{type="ops"}' in text
    assert 'blendtune_room_messages_out_total{type="welcome"}' in text
    assert 'blendtune_room_rejected_total{reason="unknown_type"}' in text
    assert "blendtune_room_publish_to_send_seconds_bucket" in text
    assert "blendtune_room_commit_seconds_count" in text
    await client.close()


async def test_membership_changes_reach_open_connections(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms, services: Services
) -> None:
    a, b = pair
    alice, bob = await notes.user(), await notes.user()
    room = await notes.create((alice, "editor"), (bob, "editor"))
    bob_conn = await join(b.ws_url, room, bob.token)
    alice_conn = await join(a.ws_url, room, alice.token)
    assert (await bob_conn.ack(await bob_conn.ops([{"op": "title", "title": "b"}])))["seq"] == 1
    # Demoted: the next edit is checked against the new role.
    await notes.add(room, bob, "viewer")
    await api.membership_changed(services, room, bob.id)

    async def refused() -> dict[str, Any] | None:
        answer = await bob_conn.ack(await bob_conn.ops([{"op": "title", "title": "again"}]))
        return answer if answer["type"] == "error" else None

    answer = await eventually(refused, interval=0.1, what="the demotion applying")
    assert answer["code"] == "forbidden"
    # Removed: closed with 4403.
    await notes.redis.hdel(members_key(notes.prefix, room), str(bob.id))
    await api.membership_changed(services, room, bob.id)
    assert await bob_conn.closed() == 4403
    # Deleted room: everyone is closed at once with 4404.
    await notes.db.execute("DELETE FROM rooms WHERE id = $1", room)
    await api.room_deleted(services, room)
    assert await alice_conn.closed() == 4404


async def test_late_or_lost_publishes_are_filled_from_the_database(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms, services: Services
) -> None:
    """Pub/sub may deliver seq 2 without seq 1: the process reads seq 1 from the log."""
    a, _ = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    client = await join(a.ws_url, room, alice.token)
    fills_before = await gap_fills(a)
    author = str(SERVER_USER_ID)
    for seq in (1, 2):
        body = {"role": "server", "ops": [{"op": "title", "title": f"t{seq}"}]}
        await notes.db.execute(
            "INSERT INTO room_ops (room_id, seq, author_id, op_id, body)"
            " VALUES ($1, $2, $3, $4, $5)",
            room,
            seq,
            SERVER_USER_ID,
            f"direct-{seq}",
            json.dumps(body),
        )
    await notes.db.execute("UPDATE rooms SET seq = 2 WHERE id = $1", room)
    # Only seq 2 is published (as if seq 1's publish had been lost).
    batch = {"type": "batch", "seq": 2, "author": author, "op_id": "direct-2", "ops": body["ops"]}
    await services.redis.publish(
        room_channel(services.keys, room), pack("b", 2, "elsewhere", "server", json.dumps(batch))
    )
    await client.until_seq(2)
    assert client.seen == [1, 2]
    assert [b["op_id"] for b in client.batches] == ["direct-1", "direct-2"]
    # The process's state followed: a fresh member gets it in the welcome.
    fresh = await join(a.ws_url, room, alice.token)
    assert fresh.welcome["seq"] == 2 and fresh.welcome["state"]["title"] == "t2"
    assert await gap_fills(a) >= fills_before + 1
    await client.close()
    await fresh.close()


async def metrics_text(server: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get("/metrics")).text


def metric(text: str, name: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(name + " "))
    return float(line.split()[1])


async def gap_fills(server: ServerProcess) -> float:
    return metric(await metrics_text(server), "blendtune_room_gap_fills_total")


async def test_committed_but_unpublished_batches_are_caught_up(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    """A process killed between commit and publish: nothing on Redis, only the log has it."""
    a, _ = pair
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    member = await join(a.ws_url, room, alice.token)

    async def commit_silently(seq: int, title: str) -> None:
        body = {"role": "editor", "ops": [{"op": "title", "title": title}]}
        await notes.db.execute(
            "INSERT INTO room_ops (room_id, seq, author_id, op_id, body)"
            " VALUES ($1, $2, $3, $4, $5)",
            room,
            seq,
            alice.id,
            f"q{seq}",
            json.dumps(body),
        )
        await notes.db.execute("UPDATE rooms SET seq = $2 WHERE id = $1", room, seq)

    # Members already there get it from the periodic check of the rooms' seqs...
    await commit_silently(1, "silent")
    await member.until_seq(1)
    assert member.batches[-1]["op_id"] == "q1"
    # ...and whoever joins gets everything in the log.
    await commit_silently(2, "quiet")
    fresh = await join(a.ws_url, room, alice.token)
    assert fresh.welcome["seq"] == 2 and fresh.welcome["state"]["title"] == "quiet"
    await member.until_seq(2)
    await member.close()
    await fresh.close()
