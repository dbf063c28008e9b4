"""The contract between ``rooms.direct.DirectWriter`` and uvicorn's private protocol object.

DirectWriter frames and writes queued messages itself, through attributes of uvicorn's
``WebSocketsSansIOProtocol`` that are not a public API. If an upgrade renames any of them,
this test fails (instead of the writer silently falling back to one syscall per message, or
breaking). pyproject.toml bounds uvicorn to the versions this test passed on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.protocol import State
from websockets.server import ServerProtocol

from rooms.direct import PROTOCOL_ATTRIBUTES, WEBSOCKETS_ATTRIBUTES, DirectWriter, FrameCache


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
