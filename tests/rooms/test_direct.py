"""The contract between ``rooms.direct.DirectWriter`` and uvicorn's private protocol object.

DirectWriter frames and writes queued messages itself, through attributes of uvicorn's
``WebSocketsSansIOProtocol`` that are not a public API. If an upgrade renames any of them,
this test fails (instead of the writer silently falling back to one syscall per message, or
breaking). pyproject.toml bounds uvicorn to the versions this test passed on.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.protocol import State
from websockets.server import ServerProtocol

from rooms import protocol as p
from rooms.conn import Conn, Pumps
from rooms.direct import (
    PROTOCOL_ATTRIBUTES,
    WEBSOCKETS_ATTRIBUTES,
    DirectWriter,
    FrameCache,
    frame_text,
)
from rooms.kinds import Actor
from rooms.metrics import RoomMetrics


async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
    raise AssertionError


async def test_uvicorn_sansio_protocol_has_what_the_direct_writer_uses() -> None:
    config = Config(app=app, ws="websockets-sansio", lifespan="off")
    config.load()
    proto = WebSocketsSansIOProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    missing = [name for name in PROTOCOL_ATTRIBUTES if not hasattr(proto, name)]
    assert not missing, f"uvicorn no longer has {missing}: update rooms/direct.py"
    # The ASGI receive uvicorn hands the app is a bound method of the protocol object.
    writer = DirectWriter.for_receive(proto.receive)
    assert writer is not None and writer.proto is proto
    assert isinstance(proto.writable, asyncio.Event)
    # What it calls on the websockets protocol under it.
    assert callable(proto.conn.send_text) and callable(proto.conn.data_to_send)
    missing = [name for name in WEBSOCKETS_ATTRIBUTES if not hasattr(proto.conn, name)]
    assert not missing, f"websockets no longer has {missing}: update rooms/direct.py"
    # Anything else (another server, a test double) gets plain ASGI sends.
    assert DirectWriter.for_receive(app) is None


async def test_a_cached_frame_is_what_websockets_would_send() -> None:
    """The frame built once per message equals the protocol's own, for every length form
    (7-bit, 16-bit and 64-bit lengths)."""
    cache = FrameCache()
    for size in (0, 1, 125, 126, 65535, 65536, 200_000):
        text = "é" * (size // 2) + "x" * (size % 2)
        ws = ServerProtocol()
        ws.state = State.OPEN
        ws.send_text(text.encode())
        expected = b"".join(ws.data_to_send())
        assert cache.frame(text) == expected
        assert cache.frame(text) is cache.frame(text)  # built once
    await asyncio.sleep(0)
    assert not cache.entries  # emptied on the next loop iteration: nothing kept when idle


async def test_the_direct_writer_writes_what_is_queued_in_order_with_control_frames_first() -> None:
    """One queued message takes the short path (no list, no join); several, or a control frame
    the protocol queued itself (a pong), take the general one. Either way the socket gets
    the protocol's pending frames first, then every queued message in order, presence slots
    replaced by the newest presence."""
    loop = asyncio.get_running_loop()
    hub = _hub()
    proto, conn, client_side = await _connection(hub, "x.1")
    writer = conn.direct
    assert writer is not None

    async def written(size: int) -> bytes:
        data = b""
        while len(data) < size:
            data += await asyncio.wait_for(loop.sock_recv(client_side, size - len(data)), 5)
        return data

    try:
        conn.enqueue('{"a":1}')
        assert writer.write_now(conn) and not conn.queue
        assert await written(9) == frame_text(b'{"a":1}')

        conn.enqueue_presence("m.1", '{"p":1}')
        conn.enqueue_presence("m.1", '{"p":2}')  # replaces the first: one slot, the newest
        assert writer.write_now(conn) and not conn.queue and not conn.presence
        assert await written(9) == frame_text(b'{"p":2}')

        proto.conn.send_pong(b"hi")  # a control frame the protocol queued itself
        pong = b"\x8a\x02hi"
        conn.enqueue('{"b":2}')
        assert writer.write_now(conn) and not conn.queue
        assert await written(4 + 9) == pong + frame_text(b'{"b":2}')

        conn.enqueue('{"c":3}')
        conn.enqueue_presence("m.2", '{"q":1}')
        conn.enqueue('{"d":4}')
        assert writer.write_now(conn) and not conn.queue
        expected = b"".join(frame_text(t) for t in (b'{"c":3}', b'{"q":1}', b'{"d":4}'))
        assert await written(len(expected)) == expected
    finally:
        proto.transport.close()
        client_side.close()


async def test_one_write_pass_writes_every_connection_a_dead_one_included() -> None:
    """Messages queued to several connections in one loop iteration are written by the next
    iteration's single pass (``Pumps``); a connection whose client is gone is marked dead
    there without keeping the others from their frames."""
    loop = asyncio.get_running_loop()
    hub = _hub()
    pairs = [await _connection(hub, f"x.{i}") for i in range(3)]
    for _, conn, _ in pairs:
        conn.start()
    gone_proto, gone, gone_client = pairs[1]
    gone_proto.connection_lost(None)  # the client vanished: writing to it raises
    gone_client.close()
    for _, conn, _ in pairs:
        conn.enqueue_presence("m.1", '{"p":1}')
    assert len(hub.pumps.due) == 3 and hub.pumps.scheduled
    expected = frame_text(b'{"p":1}')
    try:
        for i in (0, 2):
            _, conn, client = pairs[i]
            data = b""
            while len(data) < len(expected):
                data += await asyncio.wait_for(loop.sock_recv(client, 64), 5)
            assert data == expected and not conn.queue
        assert gone.dead and not gone.queue and not gone.presence
        assert not hub.pumps.due and not hub.pumps.scheduled
    finally:
        for proto, _, client in pairs:
            proto.transport.close()
            client.close()


def _hub() -> Any:
    return SimpleNamespace(
        settings=SimpleNamespace(ws_send_queue_max=8, ws_ops_per_second=10),
        metrics=RoomMetrics(CollectorRegistry()),
        pumps=Pumps(),
    )


async def _connection(hub: Any, member_id: str) -> tuple[Any, Conn, socket.socket]:
    """A member connection on uvicorn's real protocol over a socket pair, with its writer."""
    loop = asyncio.get_running_loop()
    server_side, client_side = socket.socketpair()
    client_side.setblocking(False)
    config = Config(app=app, ws="websockets-sansio", lifespan="off")
    config.load()
    proto = WebSocketsSansIOProtocol(config, ServerState(), {}, _loop=loop)
    await loop.connect_accepted_socket(lambda: proto, server_side)
    proto.conn.state = State.OPEN
    member = p.Member(id=member_id, user_id=uuid.uuid4(), role="editor")
    conn = Conn(hub, None, lambda: None, member, Actor(member.user_id, "editor"))  # type: ignore[arg-type]
    conn.direct = DirectWriter.for_receive(proto.receive)
    return proto, conn, client_side
