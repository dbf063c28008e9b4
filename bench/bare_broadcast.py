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
                self.redis = aioredis.Redis.from_url(self.redis_url)
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
            if not members and self.rooms.get(channel) is members:
                del self.rooms[channel]
                with contextlib.suppress(Exception):
                    await self.pubsub.unsubscribe(channel)

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


def create_app() -> BareBroadcast:
    return BareBroadcast(
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
    args = parser.parse_args()
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
