"""Fan-out on a Redis Cluster with sharded pub/sub: ``ClusterBroker`` (issue #15).

A room's channel carries a hash tag (``<prefix>room:{<room id>}``), so it lives on the room's
slot, beside the room's member hash. Publishes are SPUBLISH, pipelined like the single-Redis
publisher: redis-py's cluster pipeline sends each to its slot's master and follows MOVED.
SPUBLISH reaches only the subscribers on that slot's shard, so fan-out capacity grows with
shards instead of every message crossing every node (plain PUBLISH on a cluster does).

Subscriptions: one connection per master that owns a channel this process needs, each read
by its own task (blocked in ``listen``, never polled). redis-py's ``ClusterPubSub`` is not
used: it reads its per-node connections round-robin with a timeout (latency or busy polling)
and reconciles moved channels only when a command happens to hit MOVED. Instead this module
follows the cluster itself:

- a master killed (its connection breaks) or a slot moved away (the node sends an
  unsolicited ``sunsubscribe`` for every channel of a slot it no longer serves, and SSUBSCRIBE
  to a node that does not own the slot is answered MOVED) ends the current session;
- the broker reports ``on_down``, refreshes the slot map (CLUSTER SLOTS through any seed)
  with backoff until every channel it needs has a reachable master (a replica promoted, the
  slot's new owner), subscribes everything again, and reports ``on_up(was_down=True)``;
- the hub then does exactly what it does after a single Redis's outage: every member
  resyncs, presence is rebuilt under a new process id, and batches come from the op log.
  Messages published while a channel had no subscription are lost, as in any pub/sub
  outage; the hub never relies on pub/sub for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from rooms.broker import Broker, OnDown, OnMessage, OnUp
from rooms.context import RedisClient
from rooms.fanout import PipelinedBroker, RedisBroker, Subscriptions

logger = logging.getLogger("blendtune.rooms.sharded")


def default_broker(redis: RedisClient, url: str, control_channel: str, max_queue: int) -> Broker:
    """The broker for the app's Redis: sharded pub/sub on a cluster, plain pub/sub else."""
    if isinstance(redis, RedisCluster):
        return ClusterBroker(redis, control_channel, max_queue)
    return RedisBroker(redis, url, control_channel, max_queue)


async def publish(redis: RedisClient, channel: str, data: bytes) -> None:
    """One message from outside the hub (REST handlers): SPUBLISH on a cluster (a room's
    subscribers listen on its slot's shard only), PUBLISH on one Redis."""
    if isinstance(redis, RedisCluster):
        await redis.spublish(channel, data)
    else:
        await redis.publish(channel, data)


class ShardLost(ConnectionError):
    """A shard stopped serving one of our channels (slot moved, master replaced)."""


class _Shard:
    """One subscriber connection to one master."""

    def __init__(self, name: str, host: str, port: int, listener: ClusterListener) -> None:
        self.name = name
        self.listener = listener
        self.client = Redis(
            host=host,
            port=port,
            username=listener.username,
            password=listener.password,
            ssl=listener.tls,
            socket_connect_timeout=3,
            socket_keepalive=True,
            # No silent reconnect: a reconnect would resubscribe on a node that may no longer
            # own the slots, and hide that messages were missed meanwhile.
            retry=Retry(NoBackoff(), 0),
        )
        self.pubsub = self.client.pubsub()
        self.channels: set[str] = set()
        self.leaving: set[str] = set()
        self.reader: asyncio.Task[None] | None = None

    async def subscribe(self, channels: set[str]) -> None:
        # SSUBSCRIBE with several channels must stay in one slot (else CROSSSLOT).
        by_slot: dict[int, list[str]] = defaultdict(list)
        for channel in channels:
            by_slot[key_slot(channel.encode())].append(channel)
        self.channels |= channels
        self.leaving -= channels
        for group in by_slot.values():
            await self.pubsub.ssubscribe(*group)
        if self.reader is None:
            self.reader = asyncio.create_task(self._read(), name=f"rooms-shard-{self.name}")

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        self.leaving.add(channel)
        await self.pubsub.sunsubscribe(channel)

    async def _read(self) -> None:
        listener = self.listener
        async for message in self.pubsub.listen():
            kind = message["type"]
            channel = message["channel"].decode()
            if kind == "smessage":
                listener.on_message(channel, message["data"])
            elif kind == "ssubscribe":
                listener.confirmed(channel)
            elif kind == "sunsubscribe":
                if channel in self.leaving:
                    self.leaving.discard(channel)
                elif channel in self.channels:
                    raise ShardLost(f"{self.name} no longer serves {channel}")

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self.client.aclose()


class ClusterListener(Subscriptions):
    """The process's sharded subscriptions, kept alive across failovers and slot moves."""

    session_name = "rooms-cluster-session"
    lost_message = "Redis Cluster pub/sub lost: %r; following the cluster"
    max_backoff = 1.0

    def __init__(
        self,
        cluster: RedisCluster,
        control_channel: str,
        on_message: OnMessage,
        on_down: OnDown,
        on_up: OnUp,
    ) -> None:
        super().__init__(control_channel, on_message, on_down, on_up)
        self.cluster = cluster
        kwargs = cluster.get_connection_kwargs()
        self.username: str | None = kwargs.get("username")
        self.password: str | None = kwargs.get("password")
        self.tls = bool(kwargs.get("ssl", False))
        self.wanted.add(control_channel)
        self._shards: dict[str, _Shard] = {}
        self._where: dict[str, _Shard] = {}  # channel -> the shard it is subscribed on
        self._broken: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rooms-cluster-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self._close()

    async def _close(self) -> None:
        shards, self._shards, self._where = self._shards, {}, {}
        await asyncio.gather(*(shard.close() for shard in shards.values()))

    def _session_ended(self) -> None:
        if self._broken is not None and self._broken.done() and not self._broken.cancelled():
            self._broken.exception()  # reported through the session's own exception

    def _shard_for(self, channel: str) -> _Shard:
        node = self.cluster.get_node_from_key(channel)
        if node is None:
            raise ShardLost(f"no master serves {channel}'s slot")
        shard = self._shards.get(node.name)
        if shard is None:
            shard = self._shards[node.name] = _Shard(node.name, node.host, int(node.port), self)
        return shard

    def _watch(self, shard: _Shard) -> None:
        """A shard's reader ending (error, lost slot) ends the session."""
        assert shard.reader is not None and self._broken is not None
        broken = self._broken

        def done(task: asyncio.Task[None]) -> None:
            if broken.done() or task.cancelled():
                return
            broken.set_exception(task.exception() or ShardLost(f"{shard.name} stopped"))

        shard.reader.add_done_callback(done)

    async def _place(self, channels: set[str]) -> None:
        by_shard: dict[_Shard, set[str]] = defaultdict(set)
        for channel in channels:
            by_shard[self._shard_for(channel)].add(channel)
        for shard, group in by_shard.items():
            new = shard.reader is None
            await shard.subscribe(group)
            for channel in group:
                self._where[channel] = shard
            if new:
                self._watch(shard)

    async def _serve(self) -> None:
        self._broken = asyncio.get_running_loop().create_future()
        # The client's own start-up first (its command table too: a slot map without it
        # breaks redis-py's key lookup), then a fresh slot map: after a failover or a reshard
        # the cached one is stale.
        await self.cluster.initialize()
        await self.cluster.nodes_manager.initialize()
        first = set(self.wanted)
        waiters = [asyncio.get_running_loop().create_future() for _ in first]
        for channel, future in zip(first, waiters, strict=True):
            self._confirm.setdefault(channel, []).append(future)
        await self._place(first)
        await self._until(asyncio.gather(*waiters), within=5.0)
        self.connected = True
        self._backoff = 0.05
        self._ready.set()
        self.on_up(self._was_down)
        self._was_down = False
        while True:
            self._dirty.clear()
            await self._sync()
            await self._until(asyncio.ensure_future(self._dirty.wait()), within=None)

    async def _until(self, awaitable: asyncio.Future[Any], within: float | None) -> None:
        """Wait for ``awaitable`` unless a shard breaks first (then raise its error)."""
        assert self._broken is not None
        done, _ = await asyncio.wait(
            {awaitable, self._broken}, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        if self._broken in done:
            awaitable.cancel()
            self._broken.result()
        if awaitable not in done:
            awaitable.cancel()
            raise TimeoutError("the cluster did not confirm the subscriptions")

    async def _sync(self) -> None:
        # The only place subscriptions change during a session, so they never race.
        add = self.wanted - self._where.keys()
        remove = self._where.keys() - self.wanted
        for channel in self.wanted & self._where.keys():
            self.confirmed(channel)  # already subscribed (and confirmed) earlier
        if add:
            await self._place(add)
        for channel in remove:
            shard = self._where.pop(channel)
            await shard.unsubscribe(channel)


class ClusterBroker(PipelinedBroker):
    """The ``Broker`` on a Redis Cluster: SPUBLISH pipelines and one connection per shard."""

    publish_command = "spublish"

    def __init__(self, cluster: RedisCluster, control_channel: str, max_queue: int) -> None:
        super().__init__(cluster, control_channel, max_queue)
        self.cluster = cluster

    def make_listener(self, on_message: OnMessage, on_down: OnDown, on_up: OnUp) -> ClusterListener:
        return ClusterListener(self.cluster, self.control_channel, on_message, on_down, on_up)
