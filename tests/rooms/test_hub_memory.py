"""The hub in one process, without Redis: hubs on a ``MemoryBroker`` and ``MemoryPresence``.

PostgreSQL is real (the op log is the source of truth); the fan-out and presence between
"processes" are the in-memory implementations, so faults are injected exactly: a lost
publish, a broker interruption on one process.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import asyncpg
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from rooms import protocol as p
from rooms import store
from rooms.broker import MemoryBroker, MemoryHub
from rooms.conn import Conn
from rooms.context import RoomsContext, RoomSettings
from rooms.fanout import pack
from rooms.hub import Hub
from rooms.kinds import Actor
from rooms.presence import MemoryPresence
from tests.rooms.notes import NotesKind, Title
from tests.support import Backends

SETTINGS = RoomSettings(
    redis_url="memory://",
    public_url="http://127.0.0.1",
    ws_max_frame_bytes=16384,
    ws_ops_per_second=1000,
    ws_room_max_members=50,
    ws_send_queue_max=512,
    ws_max_pending_batches=64,
    ws_auth_timeout_seconds=1.0,
    ws_heartbeat_seconds=20.0,
    ws_idle_timeout_seconds=60.0,
    ws_presence_max_bytes=1024,
    room_snapshot_every=10,
    room_log_retention=20,
    room_op_id_hours=24.0,
    presence_ttl_seconds=3.0,
    room_commit_timeout_seconds=10.0,
    room_publish_queue_max=10000,
    room_kinds="",
    shutdown_grace_seconds=2.0,
)
KIND = NotesKind()
TIMEOUT = 15.0


class Member:
    """A connection of a hub with a socket that records what it is sent."""

    def __init__(self, hub: Hub, user: uuid.UUID) -> None:
        self.hub = hub
        self.received: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.arrived = asyncio.Event()
        member = p.Member(id=hub.new_member_id(), user_id=user, role="editor")
        self.actor = Actor(user_id=user, role="editor")
        self.conn = Conn(hub, self._send, lambda: None, member, self.actor)

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            self.received.append(json.loads(message["text"]))
        else:
            self.close_code = message["code"]
        self.arrived.set()

    async def join(self, room: uuid.UUID, last_seq: int | None = None) -> Member:
        await self.hub.join(KIND, room, self.conn, last_seq)
        self.conn.start()
        return self

    def submit(self, op_id: str, text: str) -> None:
        ops = [Title(text)]
        pending = store.Pending(self.actor, op_id, ops, store.encode_ops(ops), owner=self.conn)
        assert self.conn.room is not None
        self.conn.room.submit(pending)

    def leave(self) -> None:
        self.hub.leave(self.conn)

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not done():
                self.arrived.clear()
                await self.arrived.wait()

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.received if is_stream(m)]

    def view(self) -> set[str]:
        """Who this member thinks is in the room."""
        ids: set[str] = set()
        for m in self.received:
            if m["type"] == "welcome":
                ids = {x["id"] for x in m["members"]}
            elif m["type"] == "joined":
                ids.add(m["member"]["id"])
            elif m["type"] == "left":
                ids.discard(m["id"])
            elif m["type"] == "members":  # (protocol version 2, the default here)
                ids.update(x["id"] for x in m["joined"])
                ids.difference_update(m["left"])
        return ids


def is_stream(m: dict[str, Any]) -> bool:
    return m["type"] == "batch" or (m["type"] == "ack" and not m["duplicate"])


class Cluster:
    def __init__(self, pool: asyncpg.Pool, prefix: str) -> None:
        self.pool = pool
        self.prefix = prefix
        self.medium = MemoryHub()
        self.presence = MemoryPresence()
        self.hubs: list[Hub] = []

    async def hub(self, settings: RoomSettings = SETTINGS) -> Hub:
        async def never(token: str | None, headers: Any) -> uuid.UUID | None:
            return None

        kinds = SimpleNamespace(
            pool=self.pool, redis=None, keys=lambda *parts: self.prefix + ":".join(parts)
        )
        ctx = RoomsContext(settings, kinds, CollectorRegistry(), never)
        broker = MemoryBroker(self.medium)
        hub = Hub(ctx, {KIND.name: KIND}, broker=broker, presence=self.presence)
        await hub.start()
        self.hubs.append(hub)
        return hub

    async def room(self) -> uuid.UUID:
        room = uuid.uuid4()
        assert await store.ensure_room(self.pool, KIND.name, room)
        return room


@pytest.fixture
async def cluster(backends: Backends) -> AsyncIterator[Cluster]:
    pool = await asyncpg.create_pool(backends.database_url, min_size=1, max_size=4)
    made = Cluster(pool, f"{backends.redis_prefix}mem{uuid.uuid4().hex[:6]}:")
    yield made
    for hub in made.hubs:
        await hub.stop()
    await pool.close()


async def test_two_hubs_deliver_one_gapless_order_and_ack_every_author(cluster: Cluster) -> None:
    a, b = await cluster.hub(), await cluster.hub()
    room = await cluster.room()
    members = [await Member(hub, uuid.uuid4()).join(room) for hub in (a, b, a, b)]
    for i in range(20):
        for n, member in enumerate(members):
            member.submit(f"m{n}-{i}", f"{n}-{i}")
        await asyncio.sleep(0)  # (interleave the hubs' commits)
    total = 20 * len(members)
    for member in members:
        await member.until(lambda m=member: len(m.seqs()) == total)  # type: ignore[misc]
    orders = []
    for n, member in enumerate(members):
        assert member.seqs() == list(range(1, total + 1))
        stream = [m for m in member.received if is_stream(m)]
        # Its own batches come back as acks, everyone else's as batches.
        mine = {m["op_id"] for m in stream if m["op_id"].startswith(f"m{n}-")}
        assert {m["op_id"] for m in stream if m["type"] == "ack"} == mine
        orders.append([m["op_id"] for m in stream])
    assert all(order == orders[0] for order in orders)


async def test_a_lost_publish_is_read_from_the_log(cluster: Cluster) -> None:
    a, b = await cluster.hub(), await cluster.hub()
    room = await cluster.room()
    writer = await Member(a, uuid.uuid4()).join(room)
    reader = await Member(b, uuid.uuid4()).join(room)
    broker_b = b.broker
    assert isinstance(broker_b, MemoryBroker)
    broker_b.up = False  # seq 1's publish is lost on its way to b...
    writer.submit("one", "1")
    await writer.until(lambda: writer.seqs() == [1])
    broker_b.up = True  # ...seq 2's arrives, early
    writer.submit("two", "2")
    await reader.until(lambda: reader.seqs() == [1, 2])
    assert [m["op_id"] for m in reader.received if is_stream(m)] == ["one", "two"]


async def test_a_room_behind_the_database_catches_up_and_commits_without_the_lock(
    cluster: Cluster,
) -> None:
    # No periodic seq check within the test: b learns of a's batches only by committing.
    settings = msgspec.structs.replace(SETTINGS, presence_ttl_seconds=600)
    a, b = await cluster.hub(settings), await cluster.hub(settings)
    room = await cluster.room()
    writer = await Member(a, uuid.uuid4()).join(room)
    late = await Member(b, uuid.uuid4()).join(room)
    broker_b = b.broker
    assert isinstance(broker_b, MemoryBroker)
    broker_b.up = False  # a's publishes never reach b
    writer.submit("one", "1")
    writer.submit("two", "2")
    await writer.until(lambda: writer.seqs() == [1, 2])
    late.submit("three", "3")
    await late.until(lambda: late.seqs() == [1, 2, 3])
    # b's member got a's batches from the log, then the ack of its own at the next seq.
    stream = [(m["type"], m["seq"], m["op_id"]) for m in late.received if is_stream(m)]
    assert stream == [("batch", 1, "one"), ("batch", 2, "two"), ("ack", 3, "three")]
    registry = b.ctx.registry
    name = "blendtune_room_commits_total"
    assert registry.get_sample_value(name, {"path": "fast_retry"}) == 1
    assert registry.get_sample_value(name, {"path": "locked"}) == 0
    # a's batches arrive at b by pub/sub after all: nothing twice.
    broker_b.up = True
    room_a = a.rooms[room]
    for batch in list(room_a.core.recent)[:2]:
        data = pack("b", batch.seq, a.proc_id, batch.role, batch.text)
        broker_b.publish(room_a.channel, data)
    late.submit("four", "4")
    await writer.until(lambda: writer.seqs() == [1, 2, 3, 4])
    await late.until(lambda: late.seqs() == [1, 2, 3, 4])


async def test_a_broker_interruption_rebuilds_presence_exactly(cluster: Cluster) -> None:
    a, b = await cluster.hub(), await cluster.hub()
    room = await cluster.room()
    on_a = await Member(a, uuid.uuid4()).join(room)
    on_b = await Member(b, uuid.uuid4()).join(room)
    await on_a.until(lambda: on_a.view() == {on_a.conn.id, on_b.conn.id})
    broker_b = b.broker
    assert isinstance(broker_b, MemoryBroker)
    broker_b.down(ConnectionError("cut"))
    await on_b.until(lambda: any(m["type"] == "notice" for m in on_b.received))
    # Edits still go through PostgreSQL meanwhile.
    on_b.submit("during", "d")
    await on_b.until(lambda: on_b.seqs() == [1])
    broker_b.restore()
    await on_b.until(lambda: on_b.close_code == p.Close.RESYNC)
    on_b.leave()
    back = await Member(b, on_b.actor.user_id).join(room, last_seq=1)
    assert back.conn.id.split(".")[0] != on_b.conn.id.split(".")[0]  # a new process id
    # The old id's member is reaped everywhere; the new one is announced.
    await on_a.until(lambda: on_a.view() == {on_a.conn.id, back.conn.id})
    await back.until(lambda: back.view() == {on_a.conn.id, back.conn.id})
    await on_a.until(lambda: on_a.seqs() == [1])  # (through the periodic seq check)


async def test_ghosts_of_a_dead_process_never_fill_the_room(cluster: Cluster) -> None:
    """A room at its cap because of a member whose process is gone (killed, or its id retired
    after an interruption) takes a new member at once, without waiting for the periodic reap
    (here far away: a long presence TTL)."""
    settings = msgspec.structs.replace(SETTINGS, ws_room_max_members=2, presence_ttl_seconds=600)
    hub = await cluster.hub(settings)
    room = await cluster.room()
    first = await Member(hub, uuid.uuid4()).join(room)
    # A member of process "gone" is announced, and "gone" has no heartbeat.
    ghost = p.Member(id="gone.1", user_id=uuid.uuid4(), role="editor")
    channel = hub.rooms[room].channel
    MemoryBroker(cluster.medium).publish(
        channel, pack("j", ghost.id, "gone", "-", p.encode(p.Joined(member=ghost)))
    )
    await first.until(lambda: first.view() == {first.conn.id, "gone.1"})
    second = await Member(hub, uuid.uuid4()).join(room)
    assert second.conn.id in hub.rooms[room].roster
    await first.until(lambda: first.view() == {first.conn.id, second.conn.id})
