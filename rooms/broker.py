"""Pub/sub between processes: the ``Broker`` protocol and its in-memory implementation.

A broker carries envelopes (``rooms.fanout.pack``) on channels (one per room plus a control
channel) from one process's hub to every hub subscribed to that channel, in publish order
per publisher, at most once. The hub never relies on it for correctness: a lost or late
batch is read from the op log, and a broken connection is an interruption (``on_down``, then
``on_up(was_down=True)``), after which the hub resyncs its members and rebuilds presence.

Implementations: ``rooms.fanout.RedisBroker`` (production: Redis PUBLISH, one subscriber
connection per process) and ``MemoryBroker`` (every hub of one process, for tests that run
the hub without Redis). A new backend (a Redis Cluster with sharded pub/sub, NATS) is one new
class with these methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

OnMessage = Callable[[str, bytes], None]
OnDown = Callable[[Exception], None]
OnUp = Callable[[bool], None]
OnPublishError = Callable[[Exception, int], None]


class Broker(Protocol):
    @property
    def enabled(self) -> bool:
        """False while the broker is down: publishes are dropped (they would be stale when it
        is back, and every member resyncs then)."""

    def bind(
        self, on_message: OnMessage, on_down: OnDown, on_up: OnUp, on_error: OnPublishError
    ) -> None:
        """Where to report messages, interruptions and failed publishes (before ``start``)."""

    def start(self) -> None: ...

    async def wait_ready(self, within: float) -> bool: ...

    async def stop(self) -> None: ...

    def publish(self, channel: str, data: bytes) -> None:
        """Queue ``data`` for everyone subscribed to ``channel`` (this process included)."""

    def command(self, name: str, *args: Any) -> None:
        """A fire-and-forget Redis-style write sent in order with the publishes (``hdel``)."""

    async def subscribe(self, channel: str) -> None:
        """Subscribe and return once later publishes are sure to arrive. Raises when down."""

    def unsubscribe(self, channel: str) -> None: ...

    def interrupt(self) -> None:
        """Treat the connection as broken: report ``on_down``, reconnect, ``on_up(True)``."""


class MemoryHub:
    """The shared medium of ``MemoryBroker``s: one per simulated cluster."""

    def __init__(self) -> None:
        self.brokers: list[MemoryBroker] = []
        self.commands: list[tuple[str, tuple[Any, ...]]] = []


class MemoryBroker:
    """A broker for hubs in one process: delivery on the next loop iteration, in order."""

    def __init__(self, medium: MemoryHub) -> None:
        self.medium = medium
        self.enabled = True
        self.subscribed: set[str] = set()
        self.up = True
        self._on_message: OnMessage | None = None
        self._on_down: OnDown | None = None
        self._on_up: OnUp | None = None

    def bind(
        self, on_message: OnMessage, on_down: OnDown, on_up: OnUp, on_error: OnPublishError
    ) -> None:
        self._on_message, self._on_down, self._on_up = on_message, on_down, on_up

    def start(self) -> None:
        self.medium.brokers.append(self)

    async def wait_ready(self, within: float) -> bool:
        return self.up

    async def stop(self) -> None:
        if self in self.medium.brokers:
            self.medium.brokers.remove(self)

    def publish(self, channel: str, data: bytes) -> None:
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        for broker in self.medium.brokers:
            if broker.up and channel in broker.subscribed:
                loop.call_soon(broker._deliver, channel, data)

    def _deliver(self, channel: str, data: bytes) -> None:
        if self.up and channel in self.subscribed and self._on_message is not None:
            self._on_message(channel, data)

    def command(self, name: str, *args: Any) -> None:
        if self.enabled:
            self.medium.commands.append((name, args))

    async def subscribe(self, channel: str) -> None:
        if not self.up:
            raise ConnectionError("the broker is down")
        self.subscribed.add(channel)

    def unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(channel)

    def interrupt(self) -> None:
        self.down(ConnectionError("interrupted"))
        self.restore()

    # Fault injection for tests.

    def down(self, exc: Exception) -> None:
        if not self.up:
            return
        self.up = self.enabled = False
        if self._on_down is not None:
            self._on_down(exc)

    def restore(self) -> None:
        if self.up:
            return
        self.up = self.enabled = True
        if self._on_up is not None:
            self._on_up(True)
