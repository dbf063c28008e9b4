"""Fan-out between processes through Redis pub/sub: ``RedisBroker`` (see ``rooms.broker``).

One subscriber connection per process, subscribed to the channels of the rooms that have
members on this process (plus a control channel, so the connection always exists). Messages
are published with plain PUBLISH, pipelined: a single task drains everything queued since its
last round trip. redis-py's PubSub neither reconnects nor resubscribes reliably by itself
(redis-py #2089), so the listener owns the connection: on any error it tells the hub, drops
the connection, reconnects with backoff and resubscribes; the hub then resynchronises its
clients.

Both ends use redis-py only to connect (URL, TLS, AUTH, the handshake: ``RawConnection``) and
then read and write RESP themselves with hiredis: one socket read yields every message it
holds to a plain loop, and a round trip of publishes is one packed write and one count of
replies. redis-py's PubSub (``listen``: a retry wrapper, a timeout context and a dict per
message) and pipelines (a pooled connection, a task per send, Python packing and parsing
per command) cost more per message than the rooms core's own fan-out in small rooms
(docs/performance.md). ``get_message`` is never polled (redis-py #3208).

Envelope (bytes): ``<type> <key> <origin> <published_at> <role>\\n<payload>``; origin is the
publishing process id (``api`` for ``rooms.api``), published_at its wall clock (for the
latency histogram), role the author's role (batches) or ``-``. Every type:

- ``b`` batch: key = seq, payload = the ``batch`` message, encoded once by the publisher and
  sent as is by receivers to their members (``ack`` to none: the author is on the publisher).
- ``p`` presence: key = member id, payload = the ``presence`` message.
- ``j`` joined: key = member id, payload = the ``joined`` message (added to the roster).
- ``l`` left: key = member id, payload = the ``left`` message (removed from the roster).
- ``m`` membership changed (``rooms.api.membership_changed``): key = user id, no payload;
  each process re-asks the kind about that user's connections.
- ``x`` room deleted (``rooms.api.room_deleted``): no key or payload; members get 4404.
- ``v`` a named version (handled by ``rooms.history_live``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from rooms.broker import OnDown, OnMessage, OnPublishError, OnUp
from rooms.context import RedisClient

logger = logging.getLogger("blendtune.rooms.fanout")


class Envelope(NamedTuple):
    type: str
    key: str
    origin: str
    published_at: float
    role: str
    payload: str


def pack(type_: str, key: str | int, origin: str, role: str, payload: str) -> bytes:
    return f"{type_} {key} {origin} {time.time():.6f} {role}\n{payload}".encode()


def unpack(data: bytes) -> Envelope:
    head, _, payload = data.partition(b"\n")
    type_, key, origin, published_at, role = head.decode().split(" ")
    return Envelope(type_, key, origin, float(published_at), role, payload.decode())


class Publisher:
    """Queues publishes (and other writes) and sends them in pipelines from one task."""

    def __init__(
        self, redis: RedisClient, on_error: Callable[[Exception, int], None], max_queue: int
    ) -> None:
        self.redis = redis
        self.on_error = on_error
        # Commands waiting for Redis. A Redis that accepts but stalls must not grow it without
        # bound: past ``max_queue`` the queue is dropped and reported like a failed publish
        # (the hub treats it as an interruption: members resync, presence is rebuilt).
        self.max_queue = max_queue
        self.queue: list[tuple[str, tuple[Any, ...]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Off while the subscriber is down: what would be published then is stale by the
        # time Redis is back (every client resyncs then), and queueing it would grow memory.
        self.enabled = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rooms-publisher")

    def command(self, name: str, *args: Any) -> None:
        """Any command (PUBLISH, SPUBLISH, HDEL, ...), fire and forget, sent in order in
        pipelines."""
        if not self.enabled:
            return
        queue = self.queue
        if len(queue) >= self.max_queue:
            dropped = len(queue)
            queue.clear()
            self.on_error(OverflowError(f"{dropped} Redis commands waiting"), dropped)
            return
        queue.append((name, args))
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._task, 5)

    async def _run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                if not self.queue:
                    if self._stopping:
                        return
                    continue
                todo, self.queue = self.queue, []
                try:
                    await self._round_trip(todo)
                except Exception as exc:  # Redis down: PostgreSQL still has every batch
                    await self._drop()
                    self.on_error(exc, len(todo))
                if self.queue:
                    self._wakeup.set()
        finally:
            await self._drop()

    async def _round_trip(self, todo: list[tuple[str, tuple[Any, ...]]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for name, args in todo:
            getattr(pipe, name)(*args)
        await pipe.execute()

    async def _drop(self) -> None:
        """After a failed round trip (and at the end): what the next one must not reuse."""


class RawConnection:
    """A Redis connection that redis-py opened (URL, TLS, AUTH, handshake) and that is then
    read and written directly: RESP packed and parsed by hiredis, no per-command Python.

    It uses redis-py's connection's stream pair (``_reader``, ``_writer``: private,
    ``tests/rooms/test_fanout_raw.py`` checks them); nothing else of redis-py runs after
    ``open``.
    """

    __slots__ = ("conn", "parser", "reader", "writer")

    def __init__(
        self, conn: AbstractConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.conn = conn
        self.reader = reader
        self.writer = writer
        self.parser = hiredis.Reader()

    @classmethod
    async def open(cls, pool: ConnectionPool) -> RawConnection:
        conn = pool.make_connection()  # type: ignore[no-untyped-call]
        await conn.connect()
        reader: asyncio.StreamReader | None = getattr(conn, "_reader", None)
        writer: asyncio.StreamWriter | None = getattr(conn, "_writer", None)
        if reader is None or writer is None:
            await conn.disconnect()
            raise ConnectionError("redis-py's connection has no stream pair")
        return cls(conn, reader, writer)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def replies(self) -> list[Any]:
        """The replies one socket read completes (at least one); a Redis error is returned as
        a ``hiredis.ReplyError``, a closed connection raises."""
        out: list[Any] = []
        parser = self.parser
        while True:
            reply = parser.gets()
            while reply is not False:
                out.append(reply)
                reply = parser.gets()
            if out:
                return out
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            parser.feed(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.disconnect()


def resp(*parts: Any) -> bytes:
    """One command in RESP (hiredis packs in C; its stub types the tuple too narrowly)."""
    packed: bytes = hiredis.pack_command(parts)
    return packed


def pack_commands(commands: list[tuple[str, tuple[Any, ...]]]) -> bytes:
    return b"".join([resp(name, *args) for name, args in commands])


class DirectPublisher(Publisher):
    """The ``Publisher`` on one Redis without redis-py pipelines: a connection of its own
    (``RawConnection``), each round trip one packed write and one count of replies."""

    def __init__(
        self,
        redis: RedisClient,
        on_error: Callable[[Exception, int], None],
        max_queue: int,
    ) -> None:
        super().__init__(redis, on_error, max_queue)
        assert isinstance(redis, Redis)
        self.pool: ConnectionPool = redis.connection_pool
        # Replies later than this fail the round trip, as redis-py's socket_timeout did.
        timeout = self.pool.connection_kwargs.get("socket_timeout")
        self.timeout = float(timeout) if timeout else 5.0
        self.conn: RawConnection | None = None
        self.answered = 0  # replies read in the current round trip

    async def _round_trip(self, todo: list[tuple[str, tuple[Any, ...]]]) -> None:
        async with asyncio.timeout(self.timeout):
            await self._retried(pack_commands(todo), len(todo))

    async def _retried(self, data: bytes, count: int) -> None:
        try:
            await self._send(data, count)
        except (ConnectionError, OSError):
            if self.answered:
                raise
            # After a network cut or a Redis restart the connection is dead and the first
            # write fails although Redis is back: one immediate retry on a fresh connection
            # (what the app's client does, ``Retry(NoBackoff(), 1)``). Should Redis have taken
            # a command before the connection died, its repeat is harmless: receivers drop a
            # batch they have, a presence replaces itself, a join already known is not
            # announced, HDEL is idempotent.
            await self._drop()
            await self._send(data, count)

    async def _send(self, data: bytes, count: int) -> None:
        self.answered = 0
        conn = self.conn
        if conn is None or conn.reader.at_eof() or conn.writer.is_closing():
            await self._drop()
            conn = self.conn = await RawConnection.open(self.pool)
        conn.write(data)
        error: Exception | None = None
        while self.answered < count:
            for reply in await conn.replies():
                self.answered += 1
                if error is None and isinstance(reply, hiredis.ReplyError):
                    error = ResponseError(str(reply))
        if error is not None:
            raise error

    async def _drop(self) -> None:
        # A failed round trip leaves replies unread: the next one starts on a new connection.
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()


class Subscriptions:
    """What ``Listener`` and ``ClusterListener`` share: the channels wanted, subscriptions that
    wait for Redis's confirmation, readiness and a forced interruption. Subclasses run the
    session (``_session``) that subscribes and calls ``confirmed`` for each channel."""

    def __init__(
        self, control_channel: str, on_message: OnMessage, on_down: OnDown, on_up: OnUp
    ) -> None:
        self.control_channel = control_channel
        self.on_message = on_message
        self.on_down = on_down
        self.on_up = on_up
        self.wanted: set[str] = set()
        self.connected = False
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._was_down = False
        self._backoff = 0.05

    async def wait_ready(self, within: float) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), within)
        return self._ready.is_set()

    async def subscribe(self, channel: str, within: float = 5.0) -> None:
        """Subscribe and wait until Redis confirmed it (later publishes will reach us)."""
        if not self.connected:
            raise ConnectionError("Redis pub/sub is not connected")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(future)
        self.wanted.add(channel)
        self._dirty.set()
        await asyncio.wait_for(future, within)

    def unsubscribe(self, channel: str) -> None:
        if channel != self.control_channel:
            self.wanted.discard(channel)
            self._dirty.set()

    def interrupt(self) -> None:
        """Drop the connection as if Redis had failed (reconnect, resubscribe, tell the hub)."""
        session = self._session
        if session is not None and self.connected and not session.done():
            session.cancel()

    # The session task's name, what is logged when it ends, and the longest pause between
    # reconnection attempts.
    session_name = "rooms-listener-session"
    lost_message = "Redis pub/sub lost: %r; reconnecting"
    max_backoff = 2.0

    async def _serve(self) -> None:
        """One session: connect, subscribe to what is wanted, deliver until it fails."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Close what the session opened."""
        raise NotImplementedError

    def _session_ended(self) -> None:
        """Called when a session ends, before it is reported."""

    async def _run(self) -> None:
        while True:
            session = asyncio.create_task(self._serve(), name=self.session_name)
            self._session = session
            try:
                await asyncio.wait({session})
            except asyncio.CancelledError:
                session.cancel()
                with contextlib.suppress(BaseException):
                    await session
                raise
            self._session_ended()
            if session.cancelled():
                exc: BaseException = ConnectionError("interrupted: a Redis command failed")
            else:
                exc = session.exception() or ConnectionError("pub/sub session ended")
            if self.connected or not self._was_down:
                logger.warning(self.lost_message, exc)
                self.on_down(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            self._was_down = True
            self.connected = False
            self._ready.clear()
            self._fail_waiters(ConnectionError(str(exc)))
            await self._close()
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self.max_backoff)

    def confirmed(self, channel: str) -> None:
        for future in self._confirm.pop(channel, []):
            if not future.done():
                future.set_result(None)

    def _fail_waiters(self, exc: Exception) -> None:
        confirm, self._confirm = self._confirm, {}
        for futures in confirm.values():
            for future in futures:
                if not future.done():
                    future.set_exception(ConnectionError(str(exc)))
                    future.exception()  # (the session's own waiters have no reader)


class Listener(Subscriptions):
    """The process's one subscriber connection, kept alive across Redis outages."""

    def __init__(
        self,
        url: str,
        control_channel: str,
        on_message: Callable[[str, bytes], None],
        on_down: Callable[[Exception], None],
        on_up: Callable[[bool], None],
    ) -> None:
        super().__init__(control_channel, on_message, on_down, on_up)
        self.url = url
        self.subscribed: set[str] = set()
        self._conn: RawConnection | None = None
        self._client: Redis | None = None
        self._sync_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rooms-listener")
        self._sync_task = asyncio.create_task(self._sync(), name="rooms-subscriptions")

    async def stop(self) -> None:
        for task in (self._task, self._sync_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await self._close()

    async def _close(self) -> None:
        self.subscribed = set()
        conn, self._conn = self._conn, None
        client, self._client = self._client, None
        if conn is not None:
            await conn.close()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _sync(self) -> None:
        # The only place subscriptions change, so SUBSCRIBE/UNSUBSCRIBE never race.
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            conn = self._conn
            if conn is None or not self.connected:
                continue
            try:
                add = self.wanted - self.subscribed
                remove = self.subscribed - self.wanted
                for channel in self.wanted & self.subscribed:
                    self.confirmed(channel)
                if add:
                    self.subscribed |= add
                    conn.write(resp("SUBSCRIBE", *add))
                if remove:
                    self.subscribed -= remove
                    conn.write(resp("UNSUBSCRIBE", *remove))
                await conn.writer.drain()
            except Exception as exc:
                logger.warning("subscription change failed: %r", exc)
                # The listener notices the broken connection and resubscribes everything.

    async def _serve(self) -> None:
        options: dict[str, Any] = {}
        if not self.url.startswith("unix:"):
            # TCP keepalive notices a vanished peer; unix sockets take no such option.
            options["socket_keepalive"] = True
        client = Redis.from_url(
            self.url, socket_connect_timeout=3, retry=Retry(NoBackoff(), 0), **options
        )
        self._client = client
        conn = self._conn = await RawConnection.open(client.connection_pool)
        conn.write(resp("SUBSCRIBE", self.control_channel, *self.wanted))
        self.subscribed = set(self.wanted)
        self.connected = True
        self._backoff = 0.05
        on_message = self.on_message
        while True:
            # Every message one socket read holds, in order, in this one task step.
            for reply in await conn.replies():
                if isinstance(reply, hiredis.ReplyError):
                    raise ResponseError(str(reply))
                kind = reply[0]
                if kind == b"message":
                    on_message(reply[1].decode(), reply[2])
                elif kind == b"subscribe":
                    channel = reply[1].decode()
                    if channel == self.control_channel:
                        self._ready.set()
                        self.on_up(self._was_down)
                        self._was_down = False
                    self.confirmed(channel)
                    self._dirty.set()


class SubscriberLike(Protocol):
    """What a broker needs of its subscriber side (``Listener``, ``ClusterListener``)."""

    def start(self) -> None: ...

    async def wait_ready(self, within: float) -> bool: ...

    async def stop(self) -> None: ...

    async def subscribe(self, channel: str, within: float = 5.0) -> None: ...

    def unsubscribe(self, channel: str) -> None: ...

    def interrupt(self) -> None: ...


class PipelinedBroker:
    """A ``Broker`` from a pipelined ``Publisher`` and a subscriber: subclasses say which
    publish command and which subscriber."""

    publish_command = "publish"

    def __init__(self, redis: RedisClient, control_channel: str, max_queue: int) -> None:
        self.redis = redis
        self.control_channel = control_channel
        self.max_queue = max_queue
        self.publisher: Publisher | None = None
        self.listener: SubscriberLike | None = None

    def make_listener(self, on_message: OnMessage, on_down: OnDown, on_up: OnUp) -> SubscriberLike:
        raise NotImplementedError

    def make_publisher(self, on_error: OnPublishError) -> Publisher:
        return Publisher(self.redis, on_error, self.max_queue)

    def bind(
        self, on_message: OnMessage, on_down: OnDown, on_up: OnUp, on_error: OnPublishError
    ) -> None:
        def down(exc: Exception) -> None:
            publisher.enabled = False
            publisher.queue.clear()
            on_down(exc)

        def up(was_down: bool) -> None:
            publisher.enabled = True
            on_up(was_down)

        publisher = self.publisher = self.make_publisher(on_error)
        self.listener = self.make_listener(on_message, down, up)

    @property
    def enabled(self) -> bool:
        return self.publisher is not None and self.publisher.enabled

    def start(self) -> None:
        assert self.publisher is not None and self.listener is not None, "bind() first"
        self.publisher.start()
        self.listener.start()

    async def wait_ready(self, within: float) -> bool:
        assert self.listener is not None
        return await self.listener.wait_ready(within)

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.stop()
        if self.listener is not None:
            await self.listener.stop()

    def publish(self, channel: str, data: bytes) -> None:
        assert self.publisher is not None
        self.publisher.command(self.publish_command, channel, data)

    def command(self, name: str, *args: Any) -> None:
        assert self.publisher is not None
        self.publisher.command(name, *args)

    async def subscribe(self, channel: str) -> None:
        assert self.listener is not None
        await self.listener.subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        assert self.listener is not None
        self.listener.unsubscribe(channel)

    def interrupt(self) -> None:
        assert self.listener is not None
        self.listener.interrupt()


class RedisBroker(PipelinedBroker):
    """The ``Broker`` on one Redis: PUBLISH pipelines and one subscriber connection."""

    def __init__(self, redis: Redis, url: str, control_channel: str, max_queue: int) -> None:
        super().__init__(redis, control_channel, max_queue)
        self.url = url

    def make_listener(self, on_message: OnMessage, on_down: OnDown, on_up: OnUp) -> Listener:
        return Listener(self.url, self.control_channel, on_message, on_down, on_up)

    def make_publisher(self, on_error: OnPublishError) -> Publisher:
        return DirectPublisher(self.redis, on_error, self.max_queue)
