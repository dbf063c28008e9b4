"""Bounded queues under a stalled PostgreSQL and a stalled Redis: documented answers, nothing
acknowledged lost, recovery when the service is back."""

from __future__ import annotations

from typing import Any

from tests.rooms.client import Client, join
from tests.rooms.conftest import Rooms, StartRoomServer, set_members
from tests.rooms.proxy import Proxy, database_url_through
from tests.support import Backends, RedisProcess, eventually


def title(text: str) -> list[dict[str, str]]:
    return [{"op": "title", "title": text}]


async def replies_to(client: Client, op_ids: list[str]) -> list[dict[str, Any]]:
    """The first ack or error for each of ``op_ids``, whatever order they come in."""
    got: dict[str, dict[str, Any]] = {}

    def reply(message: dict[str, Any]) -> bool:
        if message["type"] in ("ack", "error") and message.get("op_id") in op_ids:
            got.setdefault(message["op_id"], message)
        return len(got) == len(op_ids)

    await client.until(reply)
    return [got[op_id] for op_id in op_ids]


async def answer(client: Client, op_id: str) -> dict[str, Any]:
    """Resend ``op_id`` until it is acknowledged, as docs/protocol.md asks after
    ``unavailable`` and ``too_many_pending`` (an ack may also have come in the meantime)."""

    async def acknowledged() -> dict[str, Any] | None:
        if op_id in client.acks:
            return client.acks[op_id]
        await client.ops(title(op_id), op_id)
        reply = await client.ack(op_id)
        if reply["type"] == "ack":
            return reply
        assert reply["code"] in ("unavailable", "too_many_pending"), reply
        return None

    # (The polling interval is the client's backoff before it resends.)
    return await eventually(acknowledged, interval=0.2, what=f"an ack for {op_id}")


async def test_a_stalled_postgres_bounds_what_waits_and_recovers(
    start_room_server: StartRoomServer, notes: Rooms, backends: Backends
) -> None:
    proxy = Proxy("127.0.0.1", 5432)
    await proxy.start()
    try:
        url = database_url_through(proxy, backends.database_url)
        server = await start_room_server(
            env={
                "BLENDTUNE_DATABASE_URL": url,
                "BLENDTUNE_ROOM_COMMIT_TIMEOUT_SECONDS": "3",
                "BLENDTUNE_WS_MAX_PENDING_BATCHES": "16",
            }
        )
        alice, bob = await notes.user(), await notes.user()
        room = await notes.create((alice, "editor"), (bob, "editor"))
        writer = await join(server.ws_url, room, alice.token)
        reader = await join(server.ws_url, room, bob.token)
        assert welcome_limit(writer) == 16
        assert (await writer.ack(await writer.ops(title("before"), "before")))["seq"] == 1

        proxy.stall()  # connections stay open; nothing comes back
        sent = [await writer.ops(title(f"s{i}"), f"s{i}") for i in range(40)]
        replies = await replies_to(writer, sent)
        # Sixteen wait for the database and are answered unavailable at its deadline; the
        # rest are refused at once, without queueing anything.
        assert [r["code"] for r in replies] == ["unavailable"] * 16 + ["too_many_pending"] * 24

        proxy.resume()
        for op_id in sent:
            await answer(writer, op_id)
        await reader.until_seq(41)
        rows = await notes.ops(room)  # (all kept: the log keeps a day of batches)
        assert [r["seq"] for r in rows] == list(range(1, 42))
        assert sorted(r["op_id"] for r in rows) == sorted(["before", *sent])
        assert writer.seen == reader.seen == list(range(1, 42))
        await writer.close()
        await reader.close()
    finally:
        await proxy.stop()


def welcome_limit(client: Client) -> int:
    return int(client.welcome["limits"]["max_pending_batches"])


async def test_a_stalled_redis_bounds_the_publish_queue_and_recovers(
    own_redis: RedisProcess, start_room_server: StartRoomServer, notes: Rooms, backends: Backends
) -> None:
    proxy = Proxy("127.0.0.1", own_redis.port)
    await proxy.start()
    try:
        server = await start_room_server(
            env={
                "BLENDTUNE_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
                "BLENDTUNE_ROOM_PUBLISH_QUEUE_MAX": "20",
            }
        )
        alice, bob = await notes.user(), await notes.user()
        room = await notes.create()
        await set_members(own_redis.url, backends.redis_prefix, room, alice, bob)
        writer = await join(server.ws_url, room, alice.token)
        reader = await join(server.ws_url, room, bob.token)

        proxy.stall()  # Redis accepts and holds every command
        sent = [await writer.ops(title(f"r{i}"), f"r{i}") for i in range(40)]
        # PostgreSQL is the source of truth: every batch is acknowledged and reaches the
        # member on this process; the publishes waiting for Redis overflow their bound, and
        # that counts as an interruption of fan-out.
        replies = await replies_to(writer, sent)
        assert [r["seq"] for r in replies] == list(range(1, 41))
        await reader.until_seq(40)
        for client in (writer, reader):
            # (It may have come among the acks and batches read above.)
            if not any(m["type"] == "notice" for m in client.other):
                await client.until(lambda m: m["type"] == "notice")
            codes = {m["code"] for m in client.other if m["type"] == "notice"}
            assert codes == {"degraded"}

        proxy.resume()
        # Fan-out is back: everyone resyncs, and gets nothing twice and nothing less.
        assert await writer.closed() == 4409
        assert await reader.closed() == 4409
        writer = await join(server.ws_url, room, alice.token, last_seq=writer.seq)
        reader = await join(server.ws_url, room, bob.token, last_seq=reader.seq)
        assert writer.welcome["resumed"] is True and writer.welcome["seq"] == 40
        after = await writer.ops(title("after"), "after")
        assert (await writer.ack(after))["seq"] == 41
        await reader.until_seq(41)
        assert reader.seen == [41]
        assert {m["id"] for m in reader.welcome["members"]} == {writer.member_id, reader.member_id}
        await writer.close()
        await reader.close()
    finally:
        await proxy.stop()
