"""Rooms on a Redis Cluster: three processes, three shards (issue #15).

Every room has a member on each of the three processes and its channel on one shard; every
member writes. Whatever happens to the cluster (nothing, a reshard under traffic, a master
killed with -9), every member of a room ends with the same gapless sequence as the op log,
every acknowledged batch is in it exactly once, and sharded pub/sub carried the traffic.

The tests run in this order on one cluster: the reshard and the failover change it.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable

from redis.crc import key_slot

from rooms.names import room_channel
from tests.cluster.member import Member
from tests.cluster.support import LocalCluster
from tests.rooms.conftest import Rooms
from tests.support import ServerProcess, condition, eventually


def title(text: str) -> list[dict[str, str]]:
    return [{"op": "title", "title": text}]


def channel(prefix: str, room: uuid.UUID) -> str:
    return room_channel(lambda *parts: prefix + ":".join(parts), room)


def slot_of(prefix: str, room: uuid.UUID) -> int:
    return key_slot(channel(prefix, room).encode())


def room_ids(prefix: str, count: int, wanted: Callable[[int], bool]) -> list[uuid.UUID]:
    """``count`` fresh room ids whose channel's slot satisfies ``wanted``."""
    found: list[uuid.UUID] = []
    while len(found) < count:
        room = uuid.uuid4()
        if wanted(slot_of(prefix, room)):
            found.append(room)
    return found


def acked(groups: list[Group]) -> int:
    return sum(len(m.acked) for g in groups for m in g.members)


class Group:
    """A room with one member per process."""

    def __init__(self, room: uuid.UUID, members: list[Member]) -> None:
        self.room = room
        self.members = members


async def open_rooms(
    rooms: Rooms, servers: list[ServerProcess], ids: list[uuid.UUID]
) -> list[Group]:
    users = [await rooms.user() for _ in servers]
    groups = []
    for room in ids:
        await rooms.redis.hset(  # the notes kind's membership, on the room's own slot
            f"{rooms.prefix}test-notes:{room}",
            mapping={"-": "-", **{str(u.id): "editor" for u in users}},
        )
        members = [Member(s.ws_url, room, u.token) for s, u in zip(servers, users, strict=True)]
        await asyncio.gather(*(m.start() for m in members))
        groups.append(Group(room, members))
    return groups


async def keep_writing(member: Member, name: str, stop: asyncio.Event, at_least: int) -> None:
    """Closed loop: the next batch once the last is acknowledged, until told to stop."""
    n = 0
    while n < at_least or not stop.is_set():
        op_id = await member.write(title(f"{name}-{n}"), f"{name}-{n}")
        await member.until_acked(op_id)
        n += 1


async def write_everywhere(groups: list[Group], stop: asyncio.Event, at_least: int) -> None:
    await asyncio.gather(
        *(
            keep_writing(m, f"{g.room.hex[:8]}-{i}", stop, at_least)
            for g in groups
            for i, m in enumerate(g.members)
        )
    )


async def check_order(rooms: Rooms, groups: list[Group]) -> int:
    """Every member has exactly the op log; every ack is in it once. Returns the batches."""
    total = 0
    for group in groups:
        final = await rooms.seq(group.room)
        assert final is not None
        for member in group.members:
            await member.until_settled(final)
        logged = {row["seq"]: row["op_id"] for row in await rooms.ops(group.room)}
        assert sorted(logged) == list(range(1, final + 1))
        assert len(set(logged.values())) == final, "an op id was applied twice"
        for member in group.members:
            assert member.problems == []
            assert member.log == logged
            assert all(logged[seq] == op_id for op_id, seq in member.acked.items())
        total += final
    return total


async def shard_subscribers(cluster: LocalCluster, prefix: str, room: uuid.UUID) -> int:
    """Processes subscribed to the room's channel, as its slot's master counts them."""
    master = await cluster.master_of(slot_of(prefix, room))
    return await cluster.shard_subscribers(master.port, channel(prefix, room))


async def publish_counts(cluster: LocalCluster) -> dict[int, tuple[int, int]]:
    """master port -> (PUBLISH calls, SPUBLISH calls) since start-up."""
    counts = {}
    for node in await cluster.topology():
        if node.master and not node.failed:
            stats = await cluster.commandstats(node.port)
            counts[node.port] = (
                stats.get("publish", {}).get("calls", 0),
                stats.get("spublish", {}).get("calls", 0),
            )
    return counts


async def test_members_of_many_rooms_on_three_processes_see_one_order(
    trio: list[ServerProcess], cluster: LocalCluster, rooms: Rooms
) -> None:
    prefix = rooms.prefix
    masters = [n for n in await cluster.topology() if n.master]
    # Four rooms on each shard.
    ids: list[uuid.UUID] = []
    for master in masters:
        ids += room_ids(prefix, 4, functools.partial(owned_by, cluster, master.port))
    groups = await open_rooms(rooms, trio, ids)
    stop = asyncio.Event()
    stop.set()
    await write_everywhere(groups, stop, at_least=6)
    assert await check_order(rooms, groups) == len(groups) * 3 * 6

    # The traffic was sharded: each room's channel has one subscriber per process on its own
    # shard, every master carried SPUBLISHes, and nobody used the cluster-wide PUBLISH.
    counts = await publish_counts(cluster)
    assert all(spublish > 0 and publish == 0 for publish, spublish in counts.values()), counts
    await finish(cluster, prefix, groups)


async def through(
    rooms: Rooms, groups: list[Group], what: str, event: Callable[[], Awaitable[None]]
) -> None:
    """Every member writes before, during and after ``event``; then every room is checked."""
    stop = asyncio.Event()
    writing = asyncio.create_task(write_everywhere(groups, stop, at_least=4))
    await eventually(
        condition(lambda: all(len(m.acked) >= 2 for g in groups for m in g.members)),
        what=f"traffic before {what}",
    )
    await event()
    before = acked(groups)
    await eventually(condition(lambda: acked(groups) > before + 18), what=f"traffic after {what}")
    stop.set()
    await writing
    await check_order(rooms, groups)


async def finish(cluster: LocalCluster, prefix: str, groups: list[Group]) -> None:
    """Each room's channel ends with one subscriber per process, on its slot's master."""
    for group in groups:
        await eventually(
            functools.partial(_subscribed, cluster, prefix, group.room, 3),
            what="every process subscribed on the room's shard",
        )
        for member in group.members:
            await member.stop()


def owned_by(cluster: LocalCluster, port: int, slot: int) -> bool:
    return cluster.slot_owner(slot) == port


async def _subscribed(cluster: LocalCluster, prefix: str, room: uuid.UUID, count: int) -> bool:
    return await shard_subscribers(cluster, prefix, room) == count


async def test_a_slot_migration_under_traffic_is_survived(
    trio: list[ServerProcess], cluster: LocalCluster, rooms: Rooms
) -> None:
    prefix = rooms.prefix
    masters = [n for n in await cluster.topology() if n.master and n.slots]
    source, target = masters[0], masters[1]
    moving = cluster.first_slots(source.port, 100)
    # Three rooms whose slots move, and three that stay where they are.
    ids = room_ids(prefix, 3, lambda slot: slot in moving)
    ids += room_ids(prefix, 3, lambda slot: cluster.slot_owner(slot) == target.port)
    groups = await open_rooms(rooms, trio, ids)

    async def reshard() -> None:
        await cluster.reshard(source, target, len(moving))
        await cluster.refresh_slots()
        assert all(cluster.slot_owner(slot_of(prefix, room)) == target.port for room in ids)

    await through(rooms, groups, "the reshard", reshard)
    # The moved rooms' members were told to resync (4409) when their processes followed the
    # slots; they resumed, resent, and lost nothing (checked above).
    assert all(4409 in m.closes for g in groups[:3] for m in g.members)
    await finish(cluster, prefix, groups)


async def test_a_killed_master_is_replaced_and_nothing_acknowledged_is_lost(
    trio: list[ServerProcess], cluster: LocalCluster, rooms: Rooms
) -> None:
    prefix = rooms.prefix
    await cluster.refresh_slots()
    masters = [n for n in await cluster.topology() if n.master and n.slots]
    victim = masters[-1]
    replica = next(n for n in await cluster.topology() if n.master_id == victim.id)
    ids = room_ids(prefix, 3, lambda slot: cluster.slot_owner(slot) == victim.port)
    ids += room_ids(prefix, 3, lambda slot: cluster.slot_owner(slot) != victim.port)
    groups = await open_rooms(rooms, trio, ids)

    async def kill() -> None:
        cluster.kill(victim.port)
        await cluster.wait_healthy()
        await cluster.refresh_slots()
        promoted = next(n for n in await cluster.topology() if n.port == replica.port)
        assert promoted.master and promoted.slots == victim.slots
        # The processes on the lost shard resync their members (4409): they resume, resend.
        await eventually(
            condition(lambda: all(4409 in m.closes for g in groups[:3] for m in g.members)),
            what="members of the lost shard's rooms told to resync",
        )

    await through(rooms, groups, "the failover", kill)
    await finish(cluster, prefix, groups)
