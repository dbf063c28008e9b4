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

from rooms.direct import PROTOCOL_ATTRIBUTES, DirectWriter


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
    # Anything else (another server, a test double) gets plain ASGI sends.
    assert DirectWriter.for_receive(app) is None
