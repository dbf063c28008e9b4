"""The uvicorn fast writer: all queued messages of a connection in one socket write.

It relies on private attributes of uvicorn's sans-I/O websockets protocol
(``WebSocketsSansIOProtocol``: ``conn``, ``transport``, ``writable``, ``disconnected``,
``close_sent``). ``pyproject.toml`` bounds uvicorn to the versions checked, and
``tests/rooms/test_direct.py`` fails loudly when an installed uvicorn no longer has them;
with any other server ``for_receive`` returns None and plain ASGI ``send`` is used.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, Any

from websockets.protocol import State

if TYPE_CHECKING:
    from rooms.conn import Conn

# What DirectWriter uses of uvicorn's protocol object (the contract test checks them).
PROTOCOL_ATTRIBUTES = ("conn", "transport", "writable", "disconnected", "close_sent")
# ...and of the websockets protocol under it (``conn``).
WEBSOCKETS_ATTRIBUTES = (
    "extensions",
    "state",
    "expect_continuation_frame",
    "data_to_send",
    "writes",  # what data_to_send would return (control frames): read, never written
)

_OPEN = State.OPEN


def frame_text(data: bytes) -> bytes:
    """A complete unmasked, unfragmented text frame (RFC 6455 5.2), as a server sends it."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + data
    return struct.pack("!BBQ", 0x81, 127, n) + data


class FrameCache:
    """The frame of each message, built once per process instead of once per member.

    A room encodes a message once and queues the same ``str`` to every member; without
    extensions (no permessage-deflate) a server's frame of it is the same bytes for every
    connection. The members' writes of a message all run in the same event-loop iteration
    (each connection's ``Conn._pump``, scheduled when the message was queued), so the cache
    only has to live until the next iteration: it is emptied then, and an idle process holds
    no frames (a byte budget would keep the last welcomes, one per connection, alive).
    Keyed by the text object's id; the entry holds the text, so the id cannot be reused.
    """

    __slots__ = ("entries", "scheduled")

    def __init__(self) -> None:
        self.entries: dict[int, tuple[str, bytes]] = {}
        self.scheduled = False

    def frame(self, text: str) -> bytes:
        entry = self.entries.get(id(text))
        if entry is not None and entry[0] is text:
            return entry[1]
        frame = frame_text(text.encode())
        self.entries[id(text)] = (text, frame)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.clear)
        return frame

    def clear(self) -> None:
        self.entries.clear()
        self.scheduled = False


FRAMES = FrameCache()


class DirectWriter:
    """Writes all queued messages of a connection with one socket write.

    Through ASGI every frame is one ``send`` and one ``write`` syscall; a connection that has
    fallen a little behind (exactly when it matters) has several messages queued, and framing
    them all and writing once is far cheaper. This reaches into uvicorn's sans-I/O websockets
    protocol (the server ``blendtune serve`` runs) and does what its ``send`` does for text
    messages: wait while the transport is paused, frame with the websockets protocol, write.
    ``for_receive`` returns None for any other server, and the ASGI path is used.
    """

    MAX_FRAMES = 64

    __slots__ = ("proto",)

    def __init__(self, proto: Any) -> None:
        self.proto = proto

    @classmethod
    def for_receive(cls, receive: Any) -> DirectWriter | None:
        proto = getattr(receive, "__self__", None)
        try:
            from uvicorn.protocols.websockets.websockets_sansio_impl import (
                WebSocketsSansIOProtocol,
            )
        except ImportError:
            return None
        if type(proto) is not WebSocketsSansIOProtocol:
            return None
        if not all(hasattr(proto, name) for name in PROTOCOL_ATTRIBUTES):
            return None
        return cls(proto)

    async def flush(self, conn: Conn) -> None:
        """Write up to ``MAX_FRAMES`` queued messages, waiting while the transport is paused."""
        await self.proto.writable.wait()
        self.write_now(conn)

    def write_now(self, conn: Conn) -> bool:
        """Write up to ``MAX_FRAMES`` queued messages if the transport takes them now; False
        if it is paused (the client reads slowly: wait in ``flush``)."""
        proto = self.proto
        if proto.disconnected or proto.close_sent:
            raise ConnectionError("the connection is closed")
        if not proto.writable.is_set():
            return False
        queue = conn.queue
        ws = proto.conn
        if (
            len(queue) == 1
            and not ws.writes
            and not ws.extensions
            and ws.state is _OPEN
            and not ws.expect_continuation_frame
        ):
            # The usual case (one message for this connection this loop iteration), once per
            # delivery: no list, no join, no call into websockets.
            text = queue.pop()
            if text[0] != "{":  # a presence slot: the newest presence of that member
                text = conn.presence.pop(text)
            proto.transport.write(FRAMES.frame(text))
            if conn.probe is not None:
                conn._probed(text)
            return True
        presence = conn.presence
        texts = queue[: self.MAX_FRAMES]
        del queue[: self.MAX_FRAMES]
        for i, text in enumerate(texts):
            if text[0] != "{":  # a presence slot: the newest presence of that member
                texts[i] = presence.pop(text)
        if ws.extensions or ws.state is not _OPEN or ws.expect_continuation_frame:
            # Compressed frames differ per connection (and a closing protocol refuses).
            for text in texts:
                ws.send_text(text.encode())
            proto.transport.write(b"".join(ws.data_to_send()))
        else:
            # What the protocol has queued itself (control frames) goes first.
            frames = ws.data_to_send()
            frame = FRAMES.frame
            frames.extend([frame(text) for text in texts])
            proto.transport.write(b"".join(frames))
        if conn.probe is not None:
            for text in texts:
                conn._probed(text)
        return True
