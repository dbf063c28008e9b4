"""A lean WebSocket client: the ``websockets`` sans-I/O protocol on a bare asyncio transport.

The load generator shares two cores with the server it measures, so every microsecond it
spends per frame is taken from the server. ``websockets.asyncio`` runs a reader task and a
queue per connection; here frames are handled inline in ``data_received`` (one call per
TCP read, usually several frames), with no task or future per message. Pings are answered
by the sans-I/O protocol itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

TextHandler = Callable[[bytes], None]
CloseHandler = Callable[[int | None, str], None]  # the server's close code and reason


class HandshakeFailed(Exception):
    pass


class WsClient(asyncio.Protocol):
    """One WebSocket connection. ``on_text`` gets each text frame's payload (UTF-8 bytes)."""

    def __init__(
        self,
        uri: str,
        on_text: TextHandler,
        on_close: CloseHandler,
        *,
        compression: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        extensions = [ClientPerMessageDeflateFactory()] if compression else None
        self.protocol = ClientProtocol(parse_uri(uri), extensions=extensions, max_size=None)
        self.headers = headers or {}
        self.on_text = on_text
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        request = self.protocol.connect()
        for name, value in self.headers.items():
            request.headers[name] = value
        self.protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.on_text(cast(bytes, event.data))
            elif isinstance(event, Response) and not self.opened.done():
                if self.protocol.handshake_exc is not None:
                    self.opened.set_exception(HandshakeFailed(str(self.protocol.handshake_exc)))
                else:
                    self.opened.set_result(None)
        self._flush()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed(str(exc or "connection closed")))
        if not self.closed:
            self.closed = True
            # close_code is only set once the protocol saw EOF; what the server said is here.
            received = self.protocol.close_rcvd
            if received is None:
                self.on_close(None, str(exc or ""))
            else:
                self.on_close(received.code, received.reason)

    # API

    def send_text(self, payload: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            return
        try:
            self.protocol.send_text(payload)
        except Exception:  # the protocol is closing: nothing more may be sent
            return
        self._flush()

    def close(self, code: int = 1000) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.protocol.send_close(code)
            self._flush()
        except Exception:
            pass
        # Do not wait for the server's half of the closing handshake: the run is over.
        self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        if self.transport is None:
            return
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
        if self.protocol.close_expected() and not self.transport.is_closing():
            self.transport.close()


async def connect(
    uri: str,
    on_text: TextHandler,
    on_close: CloseHandler,
    *,
    compression: bool = False,
    headers: dict[str, str] | None = None,
    open_timeout: float = 30.0,
) -> WsClient:
    """Open a connection and complete the opening handshake (raises on failure)."""
    parts = urlsplit(uri)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    loop = asyncio.get_running_loop()
    ssl = parts.scheme == "wss" or None

    async def open_() -> WsClient:
        _, client = await loop.create_connection(
            lambda: WsClient(uri, on_text, on_close, compression=compression, headers=headers),
            host,
            port,
            ssl=ssl,
        )
        await client.opened
        return client

    return await asyncio.wait_for(open_(), open_timeout)
