"""Baseline: Litestar's ChannelsPlugin on its Redis pub/sub backend.

What a Litestar user would write instead of Blendtune's rooms core: one subscription per
connection through the plugin (``start_subscription`` + ``run_in_background``), publishing
with ``channels.publish``. It speaks the load tester's ``simple`` wire format
(docs/performance.md). Like the bare baseline it does not echo a member's own messages
back to it (a tag before the payload says who sent it).

One change from the plain recipe: the backend subscribes to a channel of its own at start-up.
Otherwise the first joins race: redis-py's ``PubSub`` takes a connection from the pool on its
first command, so concurrent first ``SUBSCRIBE``s each take one, only the last is kept and
read, and every room subscribed over the others never receives anything (measured: in a burst
of 40 joins over 20 rooms, 1 room in 20 got its messages; Litestar 2.25, redis-py 8.1). A
Litestar user would meet the same race; the baseline is meant to measure fan-out, not it.

Run two on one Redis::

    python -m bench.channels_baseline --port 9201 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import msgspec
from litestar import Litestar, WebSocket, get, websocket
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.exceptions import WebSocketDisconnect
from redis.asyncio import Redis

from bench.bare_broadcast import JOINED, Join, serve

_ids = itertools.count()
_decode_join = msgspec.json.Decoder(Join).decode


@websocket("/simple")
async def simple(socket: WebSocket[Any, Any, Any], channels: ChannelsPlugin) -> None:
    await socket.accept()
    try:
        join = _decode_join(await socket.receive_text())
    except msgspec.DecodeError:
        await socket.close(code=4400)
        return
    prefix = socket.app.state.prefix
    channel = prefix + join.room
    tag = f"{os.getpid()}.{next(_ids)}".encode()

    async def forward(data: bytes) -> None:
        sender, _, body = data.partition(b"\n")
        if sender != tag:
            await socket.send_text(body.decode())

    async with (
        channels.start_subscription([channel]) as subscriber,
        subscriber.run_in_background(forward),
    ):
        await socket.send_text(JOINED)
        try:
            while True:
                text = await socket.receive_text()
                channels.publish(tag + b"\n" + text.encode(), [channel])
        except WebSocketDisconnect:
            pass


@get("/readyz", sync_to_thread=False)
def readyz() -> str:
    return "ok"


def create_app() -> Litestar:
    redis = Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    backend = RedisChannelsPubSubBackend(redis=redis)
    channels = ChannelsPlugin(backend=backend, arbitrary_channels_allowed=True)
    prefix = os.environ.get("BENCH_PREFIX", "bench:")

    async def connect_pubsub() -> None:
        # The PubSub's one connection, made before any join can race for it (module doc).
        await backend.subscribe([f"{prefix}ctl:{os.getpid()}"])

    app = Litestar(
        route_handlers=[simple, readyz],
        plugins=[channels],
        on_startup=[connect_pubsub],
        debug=False,
    )
    app.state.prefix = prefix
    return app


if __name__ == "__main__":
    serve("bench.channels_baseline:create_app")
