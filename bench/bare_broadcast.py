"""Baseline: a bare ASGI WebSocket broadcast, the practical limit for Python here.

One Redis subscriber connection per process, subscribed only to rooms with members on this
process; a plain PUBLISH per message; each message decoded once per process and sent to the
room's local members in a plain loop (no task per member, no queue). It speaks the load
tester's ``simple`` wire format (docs/performance.md) and nothing else: no auth, no
sequencing, no persistence, no limits. Run two of these on one Redis to compare with two
Blendtune processes::

    python -m bench.bare_broadcast --port 9101 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import redis.asyncio as aioredis

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JOINED = '{"type":"joined"}'


class Join(msgspec.Struct, tag_field="type", tag="join"):
    room: str


class BareBroadcast:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        # channel -> {sender tag: ASGI send} for the members connected to this process
        self.rooms: dict[bytes, dict[bytes, Send]] = {}
        self.ids = itertools.count()
        self.pid = os.getpid()
        self.decode_join = msgspec.json.Decoder(Join).decode
        self.redis: aioredis.Redis | None = None
        self.pubsub: Any = None
        self.listener: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.websocket(receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        else:  # plain HTTP: a readiness probe
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # redis-py's default async pool raises MaxConnectionsError under load
                # instead of waiting; publishes from many connections need a blocking one.
                pool = aioredis.BlockingConnectionPool.from_url(
                    self.redis_url, max_connections=64, timeout=5
                )
                self.redis = aioredis.Redis(connection_pool=pool)
                self.pubsub = self.redis.pubsub()
                # Always one subscription, so listen() never returns for lack of channels.
                await self.pubsub.subscribe(f"{self.prefix}ctl:{self.pid}")
                self.listener = asyncio.create_task(self.listen())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.listener is not None:
                    self.listener.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self.listener
                if self.pubsub is not None:
                    await self.pubsub.aclose()
                if self.redis is not None:
                    await self.redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def websocket(self, receive: Receive, send: Send) -> None:
        assert self.redis is not None
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        first = await receive()
        if first["type"] != "websocket.receive":
            return
        try:
            join = self.decode_join(first.get("text") or first.get("bytes") or b"")
        except msgspec.DecodeError:
            await send({"type": "websocket.close", "code": 4400})
            return
        channel = (self.prefix + join.room).encode()
        tag = f"{self.pid}.{next(self.ids)}".encode()
        members = self.rooms.get(channel)
        if members is None:
            members = self.rooms[channel] = {}
            await self.pubsub.subscribe(channel)
        members[tag] = send
        self.joined(tag, receive)
        publish = self.redis.publish
        try:
            await send({"type": "websocket.send", "text": JOINED})
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                text = message.get("text")
                if text is not None:
                    await publish(channel, tag + b"\n" + text.encode())
        finally:
            members.pop(tag, None)
            self.left(tag)
            if not members and self.rooms.get(channel) is members:
                del self.rooms[channel]
                with contextlib.suppress(Exception):
                    await self.pubsub.unsubscribe(channel)

    def joined(self, tag: bytes, receive: Receive) -> None:
        pass

    def left(self, tag: bytes) -> None:
        pass

    async def listen(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] != "message":
                continue
            members = self.rooms.get(message["channel"])
            if not members:
                continue
            sender, _, body = message["data"].partition(b"\n")
            # Decoded once per process, not once per member.
            event = {"type": "websocket.send", "text": body.decode()}
            for tag, send in list(members.items()):
                if tag != sender:
                    with contextlib.suppress(Exception):
                        await send(event)


class BatchedBroadcast(BareBroadcast):
    """An experiment, not a baseline: frames written past ASGI, one write per connection.

    What ASGI cannot express: each ``websocket.send`` is one frame and one socket write (one
    syscall). Here the listener queues frames per connection and, once the burst of pub/sub
    messages it is reading ends (``call_soon``), frames each connection's texts with uvicorn's
    own websockets protocol object and writes them with one ``transport.write``. It only
    works under uvicorn's websockets-sansio implementation. It measures how much coalescing
    socket writes is worth (docs/performance.md).
    """

    def __init__(self, redis_url: str, prefix: str) -> None:
        super().__init__(redis_url, prefix)
        self.protos: dict[bytes, Any] = {}
        self.pending: dict[bytes, list[bytes]] = {}
        self.flush_scheduled = False

    def joined(self, tag: bytes, receive: Receive) -> None:
        proto = getattr(receive, "__self__", None)
        if proto is None or not hasattr(proto, "conn") or not hasattr(proto, "transport"):
            raise RuntimeError("--batch-writes needs uvicorn's websockets-sansio")
        self.protos[tag] = proto

    def left(self, tag: bytes) -> None:
        self.protos.pop(tag, None)
        self.pending.pop(tag, None)

    async def listen(self) -> None:
        loop = asyncio.get_running_loop()
        async for message in self.pubsub.listen():
            if message["type"] != "message":
                continue
            members = self.rooms.get(message["channel"])
            if not members:
                continue
            sender, _, body = message["data"].partition(b"\n")
            pending = self.pending
            for tag in members:
                if tag != sender:
                    queued = pending.get(tag)
                    if queued is None:
                        pending[tag] = [body]
                    else:
                        queued.append(body)
            if not self.flush_scheduled:
                self.flush_scheduled = True
                loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        pending, self.pending = self.pending, {}
        for tag, bodies in pending.items():
            proto = self.protos.get(tag)
            if proto is None or proto.transport.is_closing():
                continue
            with contextlib.suppress(Exception):
                for body in bodies:
                    proto.conn.send_text(body)
                proto.transport.write(b"".join(proto.conn.data_to_send()))


def create_app() -> BareBroadcast:
    cls = BatchedBroadcast if os.environ.get("BENCH_BATCH_WRITES") == "1" else BareBroadcast
    return cls(
        os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        os.environ.get("BENCH_PREFIX", "bench:"),
    )


def serve(app_path: str) -> None:
    """Shared command line of the baseline servers: uvicorn as Blendtune runs it."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL"))
    parser.add_argument("--prefix", default=os.environ.get("BENCH_PREFIX", "bench:"))
    parser.add_argument(
        "--batch-writes",
        action="store_true",
        help="bare_broadcast only: the BatchedBroadcast experiment (one write per connection)",
    )
    args = parser.parse_args()
    if args.batch_writes:
        os.environ["BENCH_BATCH_WRITES"] = "1"
    if args.redis_url:
        os.environ["BENCH_REDIS_URL"] = args.redis_url
    os.environ["BENCH_PREFIX"] = args.prefix
    uvicorn.run(
        app_path,
        factory=True,
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        ws_ping_interval=None,
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    serve("bench.bare_broadcast:create_app")
