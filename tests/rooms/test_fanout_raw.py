"""The fan-out's own RESP ends on a real Redis: ``RawConnection``, ``DirectPublisher`` and the
``Listener`` reading raw pub/sub replies (redis-py only connects them)."""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as aioredis

from rooms.fanout import DirectPublisher, Listener, RawConnection, pack_commands
from tests.support import Backends, condition, eventually


async def test_a_raw_connection_is_redis_pys_stream_pair_and_reads_replies(
    backends: Backends,
) -> None:
    """The private attributes RawConnection takes over: if redis-py renames its stream pair,
    this fails here instead of fan-out failing to connect."""
    client = aioredis.from_url(backends.redis_url)
    conn = await RawConnection.open(client.connection_pool)
    try:
        key = f"{backends.redis_prefix}raw:{uuid.uuid4().hex}"
        conn.write(pack_commands([("set", (key, b"v")), ("get", (key,)), ("del", (key,))]))
        replies: list[Any] = []
        while len(replies) < 3:
            replies += await conn.replies()
        assert replies == [b"OK", b"v", 1]
    finally:
        await conn.close()
        await client.aclose()


async def test_the_direct_publisher_sends_in_order_and_reports_a_failed_round_trip(
    backends: Backends,
) -> None:
    client = aioredis.from_url(backends.redis_url)
    errors: list[tuple[Exception, int]] = []
    publisher = DirectPublisher(client, lambda exc, n: errors.append((exc, n)), max_queue=100)
    key = f"{backends.redis_prefix}raw:{uuid.uuid4().hex}"
    publisher.start()
    try:
        for i in range(5):
            publisher.command("rpush", key, f"m{i}")
        assert await eventually(lambda: _length(client, key)) == 5
        assert not errors
        assert await client.lrange(key, 0, -1) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        # A command Redis refuses fails its round trip (reported with how many it held), and
        # the next round trip goes through.
        publisher.command("hdel", key, "field")  # WRONGTYPE: the key is a list
        await eventually(condition(lambda: bool(errors)), what="the failed round trip reported")
        assert len(errors) == 1 and "WRONGTYPE" in str(errors[0][0]) and errors[0][1] == 1
        publisher.command("rpush", key, "after")
        assert await eventually(lambda: _length(client, key, 6)) == 6
    finally:
        await publisher.stop()
        await client.delete(key)
        await client.aclose()


async def test_the_listener_delivers_every_message_of_a_burst_in_order(
    backends: Backends,
) -> None:
    """Many messages arrive in one socket read: each is delivered, in publish order."""
    got: list[tuple[str, bytes]] = []
    ups: list[bool] = []
    control = f"{backends.redis_prefix}ctl:{uuid.uuid4().hex}"
    channel = f"{backends.redis_prefix}room:{uuid.uuid4().hex}"
    listener = Listener(
        backends.redis_url,
        control,
        lambda ch, data: got.append((ch, data)),
        lambda exc: None,
        ups.append,
    )
    listener.start()
    client = aioredis.from_url(backends.redis_url)
    try:
        assert await listener.wait_ready(10)
        assert ups == [False]
        await listener.subscribe(channel)
        async with client.pipeline(transaction=False) as pipe:
            for i in range(500):
                pipe.publish(channel, f"{i}".encode())
            await pipe.execute()
        await eventually(condition(lambda: len(got) >= 500), what="500 messages")
        assert got == [(channel, f"{i}".encode()) for i in range(500)]
        listener.unsubscribe(channel)
        await eventually(condition(lambda: channel not in listener.subscribed))
    finally:
        await listener.stop()
        await client.aclose()


async def _length(client: aioredis.Redis, key: str, at_least: int = 5) -> int | None:
    n = int(await client.llen(key))
    return n if n >= at_least else None
