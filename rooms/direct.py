"""The uvicorn fast writer: all queued messages of a connection in one socket write.

It relies on private attributes of uvicorn's sans-I/O websockets protocol
(``WebSocketsSansIOProtocol``: ``conn``, ``transport``, ``writable``, ``disconnected``,
``close_sent``). ``pyproject.toml`` bounds uvicorn to the versions checked, and
``tests/rooms/test_direct.py`` fails loudly when an installed uvicorn no longer has them;
with any other server ``for_receive`` returns None and plain ASGI ``send`` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rooms.conn import Conn

# What DirectWriter uses of uvicorn's protocol object (the contract test checks them).
PROTOCOL_ATTRIBUTES = ("conn", "transport", "writable", "disconnected", "close_sent")


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
        proto = self.proto
        await proto.writable.wait()
        if proto.disconnected or proto.close_sent:
            raise ConnectionError("the connection is closed")
        queue = conn.queue
        presence = conn.presence
        ws = proto.conn
        texts = []
        for _ in range(min(len(queue), self.MAX_FRAMES)):
            text = queue.popleft()
            if text[0] != "{":
                text = presence.pop(text)
            ws.send_text(text.encode())
            texts.append(text)
        proto.transport.write(b"".join(ws.data_to_send()))
        if conn.probe is not None:
            for text in texts:
                conn._probed(text)
