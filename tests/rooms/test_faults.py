"""Faults: a Redis restart, a client that stops reading."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.rooms.client import join
from tests.rooms.conftest import Rooms, StartRoomServer, set_members
from tests.rooms.proxy import Proxy, database_url_through
from tests.support import Backends, RedisProcess, eventually, redis_server_binary


def add(note_id: str) -> list[dict[str, str]]:
    return [{"op": "add", "id": note_id, "index": "V", "text": note_id}]


async def test_redis_restart_is_survived(
    own_redis: RedisProcess, start_room_server: StartRoomServer, notes: Rooms, backends: Backends
) -> None:
    env = {"BLENDTUNE_REDIS_URL": own_redis.url}
    a, b = await asyncio.gather(start_room_server(env=env), start_room_server(env=env))
    alice, bob = await notes.user(), await notes.user()
    room = await notes.create()  # (in the shared Redis; membership here lives in ours)
    await set_members(own_redis.url, backends.redis_prefix, room, alice, bob)
    wa = await join(a.ws_url, room, alice.token)
    wb = await join(b.ws_url, room, bob.token)
    acked: list[str] = []
    for i in range(3):
        acked.append(await wa.ops(add(f"before-a{i}")))
        acked.append(await wb.ops(add(f"before-b{i}")))
    await asyncio.gather(*(c.until_seq(6) for c in (wa, wb)))

    own_redis.stop()
    notice = await wa.until(lambda m: m["type"] == "notice")
    assert notice["code"] == "degraded"
    # PostgreSQL is the source of truth: edits are still accepted and acknowledged.
    during = await wa.ops(add("during-a"))
    ack = await wa.ack(during)
    assert ack["type"] == "ack"
    # Members on the other process get it through the database meanwhile.
    await wb.until_seq(7)
    assert wb.batches[-1]["op_id"] == during
    # New connections are refused for now, with "try again later".
    with pytest.raises(websockets.ConnectionClosed) as refused:
        await join(b.ws_url, room, bob.token)
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 1013

    own_redis.start()
    await set_members(own_redis.url, backends.redis_prefix, room, alice, bob)
    # Both processes tell their clients to resynchronise...
    assert await wa.closed(30) == 4409
    assert await wb.closed(30) == 4409
    # ...who resume where they were and get exactly what they missed.
    ra = await join(a.ws_url, room, alice.token, last_seq=wa.seq)
    rb = await join(b.ws_url, room, bob.token, last_seq=wb.seq)
    assert rb.welcome["resumed"] is True and rb.welcome["seq"] == 7
    after = await rb.ops(add("after-b"))
    assert (await rb.ack(after))["seq"] == 8
    await ra.until_seq(8)
    assert ra.batches[-1]["op_id"] == after
    fresh = await join(a.ws_url, room, alice.token)
    names = set(fresh.welcome["state"]["notes"])
    assert names == {
        *(f"before-a{i}" for i in range(3)),
        *(f"before-b{i}" for i in range(3)),
        "during-a",
        "after-b",
    }
    assert [r["seq"] for r in await notes.ops(room)] == list(range(1, 9))
    for client in (ra, rb, fresh):
        await client.close()


async def test_slow_reader_is_closed_with_resync(
    start_room_server: StartRoomServer, notes: Rooms
) -> None:
    server = await start_room_server(
        env={"BLENDTUNE_WS_SEND_QUEUE_MAX": "16", "BLENDTUNE_WS_OPS_PER_SECOND": "1000"}
    )
    alice, bob, carol = await notes.user(), await notes.user(), await notes.user()
    room = await notes.create((alice, "editor"), (bob, "editor"), (carol, "editor"))
    writer = await join(server.ws_url, room, alice.token)
    reader = await join(server.ws_url, room, bob.token)
    # The slow one: a tiny receive buffer, and it stops reading.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    slow = await join(server.ws_url, room, carol.token, sock=sock, max_queue=1)

    # Enough to fill the kernel's socket buffers (they grow to 4 MiB on loopback) and then
    # the 16-message queue.
    text = "z" * 14000
    count = 450

    async def write() -> None:
        for i in range(count):
            await writer.ops([{"op": "add", "id": f"n{i}", "index": "V", "text": text}], f"n{i}")
            if i % 10 == 9:
                await writer.ack(f"n{i}")
        await writer.until_seq(count)

    # The others are unaffected: every batch reaches the reader, who keeps reading.
    await asyncio.gather(write(), reader.until_seq(count))
    assert reader.seen == list(range(1, count + 1))
    # The slow reader, reading again, finds the resync close after what had been sent.
    assert await slow.closed(30) == 4409
    assert len(slow.seen) < count
    assert slow.seen == list(range(1, len(slow.seen) + 1))
    # And can come back with last_seq to catch up.
    # (More missed batches than half the send queue: a snapshot instead.)
    back = await join(server.ws_url, room, carol.token, last_seq=slow.seq, max_size=None)
    assert back.welcome["resumed"] is False and back.welcome["seq"] == count
    assert len(back.welcome["state"]["notes"]) == count
    for client in (writer, reader, back):
        await client.close()


async def test_rooms_work_over_a_unix_socket_redis(
    start_room_server: StartRoomServer, notes: Rooms, backends: Backends, tmp_path: Path
) -> None:
    """The embedded default's Redis listens on a unix socket."""
    socket_path = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(socket_path), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:

        async def listening() -> bool:
            return socket_path.exists()

        await eventually(listening, what="redis-server's socket")
        url = f"unix://{socket_path}"
        server = await start_room_server(env={"BLENDTUNE_REDIS_URL": url})
        alice, bob = await notes.user(), await notes.user()
        room = await notes.create()
        await set_members(url, backends.redis_prefix, room, alice, bob)
        first = await join(server.ws_url, room, alice.token)
        second = await join(server.ws_url, room, bob.token)
        op_id = await first.ops(add("over-unix"))
        assert (await first.ack(op_id))["seq"] == 1
        await second.until_seq(1)
        await first.close()
        await second.close()
    finally:
        process.kill()
        process.wait()


async def test_postgres_outage_answers_unavailable_and_recovers(
    start_room_server: StartRoomServer, notes: Rooms, backends: Backends
) -> None:
    proxy = Proxy("127.0.0.1", 5432)
    await proxy.start()
    try:
        url = database_url_through(proxy, backends.database_url)
        server = await start_room_server(env={"BLENDTUNE_DATABASE_URL": url})
        alice = await notes.user()
        room = await notes.create((alice, "editor"))
        client = await join(server.ws_url, room, alice.token)
        assert (await client.ack(await client.ops(add("before"))))["seq"] == 1

        proxy.cut()
        during = await client.ops(add("during"))
        error = await client.ack(during)
        assert error["type"] == "error" and error["code"] == "unavailable"
        with pytest.raises(websockets.ConnectionClosed) as refused:
            await join(server.ws_url, room, alice.token)
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 1013

        proxy.up = True

        # The client resends the same op id until the database is back (the polling
        # interval is its backoff).
        async def acknowledged() -> dict[str, Any] | None:
            client.acks.pop(during, None)
            await client.ops(add("during"), during)
            reply = await client.ack(during)
            if reply["type"] == "ack":
                return reply
            assert reply["code"] == "unavailable"
            return None

        answer = await eventually(acknowledged, interval=0.2, what="the resent batch's ack")
        assert answer["seq"] == 2
        rows = await notes.ops(room)
        assert [(r["seq"], r["op_id"]) for r in rows][1:] == [(2, during)]
        fresh = await join(server.ws_url, room, alice.token)
        assert set(fresh.welcome["state"]["notes"]) == {"before", "during"}
        await client.close()
        await fresh.close()
    finally:
        await proxy.stop()
