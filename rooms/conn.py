"""One member connection: its identity, its bounded outgoing queue and its rate limits.

Each ``Conn`` has a bounded outgoing queue; every message is encoded once per process and the
same text queued to every local member. An idle connection has no task of its own: what is
queued in one turn of the event loop is written on the next (``_pump``, run for every
connection with something queued by one ``Pumps`` pass per process), straight to the
socket through ``rooms.direct.DirectWriter``; a task exists only while a connection waits for
its transport (a client reading slowly), sends its close frame, or has no direct writer (plain
ASGI ``send``). Presence updates
are coalesced per sender in each queue: only the newest unsent one goes out. A queue over
``ws_send_queue_max`` closes the connection with 4409 (resync) instead of growing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rooms import protocol as p
from rooms.kinds import Actor

if TYPE_CHECKING:
    from rooms.direct import DirectWriter
    from rooms.hub import Hub
    from rooms.room import Room

CLOSE_DEADLINE = 10.0  # a client that cannot take the close frame within this is dropped

logger = logging.getLogger("blendtune.rooms")


class Pumps:
    """The connections with something to write, written in one pass on the next loop
    iteration (one per process, ``Hub.pumps``).

    One ``call_soon`` per connection per message was a uvloop ``Handle`` (and a bound method)
    per delivery: in a room of 1,000 local members each message allocated 1,000 of them,
    enough to trigger a garbage collection or two per message, and running them cost more
    than the list append that replaces them here.
    """

    __slots__ = ("due", "scheduled")

    def __init__(self) -> None:
        self.due: list[Conn] = []
        self.scheduled = False

    def add(self, conn: Conn) -> None:
        self.due.append(conn)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.run)

    def run(self) -> None:
        due, self.due = self.due, []
        self.scheduled = False  # (what is queued while these are written goes in the next pass)
        for conn in due:
            try:
                conn._pump()
            except Exception:  # one connection's bug must not leave the others unwritten
                logger.exception("writing to a room connection failed")


class Bucket:
    """A token bucket; refusals beyond the sustained rate add up to a flood."""

    __slots__ = ("excess", "last", "rate", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.excess = 0.0
        self.last = time.monotonic()

    def take(self, now: float) -> bool | None:
        """True: go ahead. False: refused. None: refused, and the client is flooding."""
        elapsed = now - self.last
        self.last = now
        self.tokens = min(self.rate, self.tokens + elapsed * self.rate)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        # Refusals decay at half the rate: a client sending twice the limit floods in ~2 s,
        # one slightly over the limit only sees rate_limited errors.
        self.excess = max(0.0, self.excess - elapsed * self.rate / 2) + 1
        return None if self.excess > self.rate else False


class Conn:
    """One member connection: its identity, outgoing queue and limits."""

    __slots__ = (
        "abort",
        "actor",
        "close_code",
        "close_reason",
        "close_sent",
        "dead",
        "direct",
        "hub",
        "id",
        "last_seen",
        "max_queue",
        "member",
        "ops_bucket",
        "other_bucket",
        "pinged",
        "presence",
        "probe",
        "pumps",
        "queue",
        "room",
        "scheduled",
        "send",
        "started",
        "unanswered",
        "version",
        "writer",
    )

    def __init__(
        self,
        hub: Hub,
        send: Callable[[Any], Any],
        abort: Callable[[], None],
        member: p.Member,
        actor: Actor,
        version: int = p.PROTOCOL_VERSION,
    ) -> None:
        self.hub = hub
        self.pumps: Pumps = hub.pumps
        # The protocol version the client asked for in its hello (1: joined/left one by one).
        self.version = version
        self.send = send
        self.abort = abort
        self.member = member
        self.id = member.id
        self.actor = actor
        self.room: Room | None = None
        # Encoded messages (JSON objects, so they start with "{"), and presence slots: a
        # member id standing for the newest presence of that member (in ``presence``), so a
        # newer update replaces one not yet sent without allocating anything.
        # (A list, not a deque: an empty deque keeps a 760-byte block, an idle connection's
        # emptied list 56 bytes; the writer takes from the front in slices.)
        self.queue: list[str] = []
        self.presence: dict[str, str] = {}
        self.max_queue = hub.settings.ws_send_queue_max
        self.started = False  # writing starts after the welcome is queued (``start``)
        self.scheduled = False  # a ``_pump`` is due on the next loop iteration
        self.close_sent = False
        self.dead = False  # the socket is gone: nothing more is written
        self.close_code: int | None = None
        self.close_reason = ""
        self.last_seen = time.monotonic()
        self.pinged = False
        rate = float(hub.settings.ws_ops_per_second)
        self.ops_bucket = Bucket(rate)
        self.other_bucket = Bucket(rate)
        # Only while writing has to wait (a paused transport, the close frame, ASGI sends).
        self.writer: asyncio.Task[None] | None = None
        self.direct: DirectWriter | None = None
        # (text, published_at) of one message to time until it is handed to the socket.
        self.probe: tuple[str, float] | None = None
        # Op batches sent and not yet answered (ack, duplicate ack or error): bounded by
        # ws_max_pending_batches, so a client cannot queue unbounded work.
        self.unanswered = 0

    # Outgoing.

    # (enqueue and enqueue_presence run once per delivery: the checks are written out.)

    def enqueue(self, text: str) -> None:
        if self.close_code is not None:
            return
        queue = self.queue
        queue.append(text)
        if len(queue) > self.max_queue:
            self._overflow()
        elif not self.scheduled:
            self._kick()

    def enqueue_presence(self, member_id: str, text: str) -> None:
        if self.close_code is not None:
            return
        presence = self.presence
        if member_id in presence:
            presence[member_id] = text  # replaces the one not yet sent
            return
        presence[member_id] = text
        queue = self.queue
        queue.append(member_id)
        if len(queue) > self.max_queue:
            self._overflow()
        elif not self.scheduled:
            self._kick()

    def _overflow(self) -> None:
        self.hub.metrics.slow_consumers.inc()
        self.close(p.Close.RESYNC, "too slow: resync", flush=False)

    def _kick(self) -> None:
        if self.scheduled or not self.started or self.writer is not None or self.dead:
            return
        self.scheduled = True
        self.pumps.add(self)

    def start(self) -> None:
        """Start writing (the welcome and whatever followed it are queued)."""
        self.started = True
        self._kick()

    def stop(self) -> None:
        """The client is gone: write nothing more (a close frame in flight is abandoned)."""
        self.dead = True
        if self.writer is not None and self.close_code is None:
            self.writer.cancel()

    def _pump(self) -> None:
        """Write what is queued, without a task while the transport takes it."""
        self.scheduled = False
        if self.writer is not None or self.dead or self.close_sent:
            return
        direct = self.direct
        if direct is not None and self.queue:
            try:
                while self.queue and direct.write_now(self):
                    pass
            except Exception:  # the connection is gone; the reader sees the disconnect
                self._gone()
                return
        if self.queue or self.close_code is not None:
            # A paused transport, the close frame, or no direct writer: a task for that.
            self.writer = asyncio.get_running_loop().create_task(self.run_writer())

    def _gone(self) -> None:
        self.dead = True
        self.queue.clear()
        self.presence.clear()

    def close(self, code: int, reason: str, *, flush: bool = True) -> None:
        """Close once the queued messages are sent (or, with ``flush=False``, dropped)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self.hub.metrics.closes.labels(str(code)).inc()
        if not flush:
            self.queue.clear()
            self.presence.clear()
        self._kick()
        asyncio.get_running_loop().call_later(CLOSE_DEADLINE, self._deadline)

    def _deadline(self) -> None:
        if not self.close_sent and not self.dead:
            self.abort()

    def _probed(self, text: str) -> None:
        probe = self.probe
        if probe is not None and probe[0] is text:
            self.probe = None
            self.hub.metrics.publish_to_send.observe(max(0.0, time.time() - probe[1]))

    async def run_writer(self) -> None:
        """Send everything queued (waiting for the transport as needed), then the close frame
        if one is due; then end. Messages queued meanwhile are sent too."""
        send = self.send
        queue = self.queue
        try:
            direct = self.direct
            while queue:
                if direct is not None:
                    await direct.flush(self)
                    continue
                text = queue.pop(0)
                if text[0] != "{":
                    text = self.presence.pop(text)
                await send({"type": "websocket.send", "text": text})
                self._probed(text)
            if self.close_code is not None and not self.close_sent:
                self.close_sent = True
                await send(
                    {
                        "type": "websocket.close",
                        "code": self.close_code,
                        "reason": self.close_reason,
                    }
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection is gone; the reader sees the disconnect
            self._gone()
        finally:
            self.writer = None
