"""A lean WebSocket client: the ``websockets`` sans-I/O protocol on a bare asyncio transport.

The load generator shares two cores with the server it measures, so every microsecond it
spends per frame is taken from the server. ``websockets.asyncio`` runs a reader task and a
queue per connection; here frames are handled inline in ``data_received`` (one call per
TCP read, usually several frames), with no task or future per message.

Once the handshake is done and no extension was negotiated (no compression), incoming frames
are parsed here rather than by the protocol (``_receive_plain``): a server's frames are
unmasked and, from the servers measured here, never fragmented, and reading a header is a
few byte operations, where websockets' general parser costs about 9 us a frame. In large and
huge rooms the generator receives tens of thousands of frames a second on the same two cores
as the servers, so this is CPU the measured server gets back. Pings are answered and a
close is returned as the protocol would; sending (masked frames, pongs, the close) still goes
through the protocol. With compression, the protocol parses everything.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        # After the handshake without extensions: frames parsed here (module doc).
        self.plain: bytearray | None = None
        self.fragments: list[bytes] = []  # a fragmented text message, in case one comes
        self.close_received: tuple[int | None, str] | None = None

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
        if self.plain is not None:
            self.plain += data
            self._receive_plain()
            return
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
                    if not self.protocol.extensions:
                        # Take over parsing, with whatever the protocol has not parsed yet
                        # (frames that came in the handshake's read were parsed above).
                        self.plain = bytearray(self.protocol.reader.buffer)
                        self.protocol.reader.buffer.clear()
        self._flush()
        if self.plain:
            self._receive_plain()

    def _receive_plain(self) -> None:
        """Parse every complete frame in ``self.plain`` (RFC 6455, server to client)."""
        buf = self.plain
        assert buf is not None
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if second & 0x80:  # a masked frame from a server: a protocol error
                self._fail(1002, "masked frame from the server")
                return
            if end - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            opcode, fin = first & 0x0F, first & 0x80
            if opcode == 0x1 and fin:
                self.on_text(payload)
            elif opcode in (0x1, 0x0):  # a fragment of a text message
                self.fragments.append(payload)
                if fin:
                    message, self.fragments = b"".join(self.fragments), []
                    self.on_text(message)
            elif opcode == 0x9:  # ping
                self.protocol.send_pong(payload)
                self._flush()
            elif opcode == 0x8:  # close: answer it and hang up, as the protocol would
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.close_received = (code, payload[2:].decode(errors="replace"))
                self._fail(code if code is not None else 1000, "")
                return
            # binary frames and pongs: nothing the load tester uses
        del buf[:pos]

    def _fail(self, code: int, reason: str) -> None:
        """Send a close frame (if the protocol still may) and close the transport."""
        with contextlib.suppress(Exception):
            self.protocol.send_close(code, reason)
            self._flush()
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        if self.plain is not None:
            return None  # close the transport; connection_lost reports the close
        self.protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed(str(exc or "connection closed")))
        if not self.closed:
            self.closed = True
            if self.close_received is not None:  # parsed here (plain frames)
                self.on_close(*self.close_received)
                return
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
