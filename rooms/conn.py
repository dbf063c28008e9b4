"""One member connection: its identity, its bounded outgoing queue and its rate limits.

Each ``Conn`` has a bounded outgoing queue drained by one writer task; every message is
encoded once per process and the same text queued to every local member. Presence updates
are coalesced per sender in each queue: only the newest unsent one goes out. A queue over
``ws_send_queue_max`` closes the connection with 4409 (resync) instead of growing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rooms import protocol as p
from rooms.kinds import Actor

if TYPE_CHECKING:
    from rooms.direct import DirectWriter
    from rooms.hub import Hub
    from rooms.room import Room

CLOSE_DEADLINE = 10.0  # a client that cannot take the close frame within this is dropped


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
        "queue",
        "room",
        "send",
        "unanswered",
        "version",
        "waiter",
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
        self.queue: deque[str] = deque()
        self.presence: dict[str, str] = {}
        self.max_queue = hub.settings.ws_send_queue_max
        self.waiter: asyncio.Future[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.last_seen = time.monotonic()
        self.pinged = False
        rate = float(hub.settings.ws_ops_per_second)
        self.ops_bucket = Bucket(rate)
        self.other_bucket = Bucket(rate)
        self.writer: asyncio.Task[None] | None = None
        self.direct: DirectWriter | None = None
        # (text, published_at) of one message to time until it is handed to the socket.
        self.probe: tuple[str, float] | None = None
        # Op batches sent and not yet answered (ack, duplicate ack or error): bounded by
        # ws_max_pending_batches, so a client cannot queue unbounded work.
        self.unanswered = 0

    # Outgoing.

    def enqueue(self, text: str) -> None:
        if self.close_code is not None:
            return
        self.queue.append(text)
        self._after_append()

    def enqueue_presence(self, member_id: str, text: str) -> None:
        if self.close_code is not None:
            return
        if member_id in self.presence:
            self.presence[member_id] = text  # replaces the one not yet sent
            return
        self.presence[member_id] = text
        self.queue.append(member_id)
        self._after_append()

    def _after_append(self) -> None:
        if len(self.queue) > self.max_queue:
            self.hub.metrics.slow_consumers.inc()
            self.close(p.Close.RESYNC, "too slow: resync", flush=False)
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self, code: int, reason: str, *, flush: bool = True) -> None:
        """Close once the queued messages are sent (or, with ``flush=False``, dropped)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self.hub.metrics.closes.labels(str(code)).inc()
        if not flush:
            self.queue.clear()
            self.presence.clear()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        asyncio.get_running_loop().call_later(CLOSE_DEADLINE, self._deadline)

    def _deadline(self) -> None:
        if self.writer is not None and not self.writer.done():
            self.abort()

    def _probed(self, text: str) -> None:
        probe = self.probe
        if probe is not None and probe[0] is text:
            self.probe = None
            self.hub.metrics.publish_to_send.observe(max(0.0, time.time() - probe[1]))

    async def run_writer(self) -> None:
        send = self.send
        queue = self.queue
        loop = asyncio.get_running_loop()
        try:
            while True:
                direct = self.direct
                while queue:
                    if direct is not None:
                        await direct.flush(self)
                        continue
                    text = queue.popleft()
                    if text[0] != "{":
                        text = self.presence.pop(text)
                    await send({"type": "websocket.send", "text": text})
                    self._probed(text)
                if self.close_code is not None:
                    await send(
                        {
                            "type": "websocket.close",
                            "code": self.close_code,
                            "reason": self.close_reason,
                        }
                    )
                    return
                self.waiter = loop.create_future()
                await self.waiter
                self.waiter = None
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection is gone; the reader sees the disconnect
            return
