"""Where presence lives between processes: rosters and process heartbeats.

A room's roster is a hash (member id -> member JSON) that every process reads when the room
becomes active on it; member ids start with the id of the process that holds the connection,
and each process keeps a heartbeat key alive while it runs. The hub (``rooms.hub``) owns the
rules (register on join, reap members of processes whose heartbeat lapsed, retire a process
id after a fan-out interruption); a ``PresenceStore`` only stores. ``RedisPresence`` is the
production one; ``MemoryPresence`` serves hubs of one process in tests (Centrifuge's
PresenceManager split).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from rooms import names
from rooms.broker import Broker
from rooms.context import RedisClient

ROSTER_TTL = 86400  # a roster nobody touched for a day is dropped by Redis


class PresenceStore(Protocol):
    async def add(self, entries: Sequence[tuple[str, str, bytes]]) -> None:
        """Register members: (roster key, member id, member JSON)."""

    def remove(self, roster: str, member_id: str) -> None:
        """Unregister a member (fire and forget; in order with the broker's publishes)."""

    async def remove_now(self, entries: Iterable[tuple[str, str]]) -> None: ...

    async def roster(self, roster: str) -> dict[str, bytes]: ...

    async def alive(self, procs: Sequence[str]) -> set[str]:
        """Which of these process ids have a live heartbeat."""

    async def beat(self, proc: str, ttl: float) -> bool:
        """Refresh ``proc``'s heartbeat; whether it was still alive before."""

    async def retire(self, old: str, new: str, ttl: float) -> None:
        """Start ``new``'s heartbeat and end ``old``'s (its members count as dead at once)."""

    async def end(self, proc: str) -> None:
        """End ``proc``'s heartbeat (a clean shutdown)."""


class RedisPresence:
    """Rosters as Redis hashes, heartbeats as keys with a TTL."""

    def __init__(self, redis: RedisClient, keys: Callable[..., str], broker: Broker) -> None:
        self.redis = redis
        self.keys = keys
        self.broker = broker

    async def add(self, entries: Sequence[tuple[str, str, bytes]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for roster, member_id, member in entries:
            pipe.hset(roster, member_id, member)
            pipe.expire(roster, ROSTER_TTL)
        await pipe.execute()

    def remove(self, roster: str, member_id: str) -> None:
        self.broker.command("hdel", roster, member_id)

    async def remove_now(self, entries: Iterable[tuple[str, str]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for roster, member_id in entries:
            pipe.hdel(roster, member_id)
        await pipe.execute()

    async def roster(self, roster: str) -> dict[str, bytes]:
        raw = await self.redis.hgetall(roster)
        return {_text(k): _bytes(v) for k, v in raw.items()}

    async def alive(self, procs: Sequence[str]) -> set[str]:
        if not procs:
            return set()  # (and an MGET of no keys is an error on a cluster: no slot)
        flags = await self.redis.mget([names.proc_key(self.keys, x) for x in procs])
        return {proc for proc, flag in zip(procs, flags, strict=True) if flag is not None}

    async def beat(self, proc: str, ttl: float) -> bool:
        previous = await self.redis.set(
            names.proc_key(self.keys, proc), b"1", px=int(ttl * 1000), get=True
        )
        return previous is not None

    async def retire(self, old: str, new: str, ttl: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(names.proc_key(self.keys, new), b"1", px=int(ttl * 1000))
        pipe.delete(names.proc_key(self.keys, old))
        await pipe.execute()

    async def end(self, proc: str) -> None:
        await self.redis.delete(names.proc_key(self.keys, proc))


class MemoryPresence:
    """Rosters and heartbeats in this process's memory (shared by the hubs of a test)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rosters: dict[str, dict[str, bytes]] = {}
        self.heartbeats: dict[str, float] = {}  # process id -> expiry

    async def add(self, entries: Sequence[tuple[str, str, bytes]]) -> None:
        for roster, member_id, member in entries:
            self.rosters.setdefault(roster, {})[member_id] = member

    def remove(self, roster: str, member_id: str) -> None:
        self.rosters.get(roster, {}).pop(member_id, None)

    async def remove_now(self, entries: Iterable[tuple[str, str]]) -> None:
        for roster, member_id in entries:
            self.remove(roster, member_id)

    async def roster(self, roster: str) -> dict[str, bytes]:
        return dict(self.rosters.get(roster, {}))

    async def alive(self, procs: Sequence[str]) -> set[str]:
        now = self.clock()
        return {proc for proc in procs if self.heartbeats.get(proc, 0.0) > now}

    async def beat(self, proc: str, ttl: float) -> bool:
        now = self.clock()
        was = self.heartbeats.get(proc, 0.0) > now
        self.heartbeats[proc] = now + ttl
        return was

    async def retire(self, old: str, new: str, ttl: float) -> None:
        self.heartbeats[new] = self.clock() + ttl
        self.heartbeats.pop(old, None)

    async def end(self, proc: str) -> None:
        self.heartbeats.pop(proc, None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
