"""Group commit across rooms: one statement carries the queued batches of many rooms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING

from rooms import store

if TYPE_CHECKING:
    from rooms.hub import Hub
    from rooms.room import Room

logger = logging.getLogger("blendtune.rooms")


class Committer:
    """Group commit across rooms: one statement carries the queued batches of many rooms.

    A room with queued batches is "ready"; at the end of the event-loop iteration the
    committer takes the batches of every ready room that has no commit in flight and sends
    them in one statement (``store.commit_many``), with up to ``MAX_INFLIGHT`` statements in
    flight. At low load a batch goes out at once, alone; under load each statement (and each
    WAL flush) carries many batches, which is what lets throughput grow with load.

    Two statements in flight, not more: one keeps the database busy while the other's
    outcome is delivered, and a slow one (the locking path) does not stop the rest. More
    only split the same load into more, smaller statements, each with its round trip, its
    wake-up of a PostgreSQL backend and, with rooms on several processes, its chance to
    race another process for a room's seq (docs/performance.md: 4 in flight against 2).
    """

    MAX_INFLIGHT = 2
    MAX_BATCHES = 1024  # per statement

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.ready_rooms: dict[uuid.UUID, Room] = {}
        self.inflight = 0
        self._scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()

    def ready(self, room: Room) -> None:
        self.ready_rooms[room.room_id] = room
        self._idle.clear()
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._launch)

    def _launch(self) -> None:
        self._scheduled = False
        while self.ready_rooms and self.inflight < self.MAX_INFLIGHT:
            work: list[tuple[Room, list[store.Pending], int]] = []
            count = 0
            while self.ready_rooms and count < self.MAX_BATCHES:
                room = self.ready_rooms.pop(next(iter(self.ready_rooms)))
                if room.busy or not room.queue:
                    continue
                batch = room.take()
                work.append((room, batch, room.seq))
                count += len(batch)
            if not work:
                break
            self.inflight += 1
            self.hub.spawn(self._commit(work))
        if not self.inflight and not self.ready_rooms:
            self._idle.set()

    async def _commit(self, work: list[tuple[Room, list[store.Pending], int]]) -> None:
        metrics = self.hub.metrics
        started = time.perf_counter()
        try:
            # A hung database must not hold the rooms forever; a batch whose outcome is
            # unknown is answered "unavailable" and resent by its client with the same op id.
            # Not asyncio.wait_for: it waits for the cancelled statement to wind down, and
            # asyncpg's cancellation waits for the hung server too. The statement is left to
            # finish (or fail) on its own; if it commits after all, the rooms catch up from
            # the log and a resent op id is answered as a duplicate.
            paths: dict[str, int] = {}
            statement = self.hub.spawn(
                store.commit_many(
                    self.hub.ctx.pool, [(room, batch) for room, batch, _ in work], paths
                )
            )
            done, _ = await asyncio.wait(
                {statement}, timeout=self.hub.settings.room_commit_timeout_seconds
            )
            if not done:
                statement.add_done_callback(_late)
                raise TimeoutError("the database did not answer in time")
            outcomes = statement.result()
            for path, count in paths.items():
                metrics.commit_paths.labels(path).inc(count)
        except Exception as exc:  # unreachable, or unknown outcome: the clients resend
            outcomes = [exc] * len(work)
        finally:
            self.inflight -= 1
        metrics.commit_latency.observe(time.perf_counter() - started)
        metrics.commit_batches.observe(sum(len(batch) for _, batch, _ in work))
        for (room, batch, before), outcome in zip(work, outcomes, strict=True):
            try:
                room.committed(batch, outcome, before)
            except Exception:
                logger.exception("room %s: delivering a commit failed", room.room_id)
        self._launch()

    async def drain(self, within: float) -> None:
        """Wait until everything queued is committed (at shutdown)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within)


def _late(statement: asyncio.Future[list[store.Outcome]]) -> None:
    if not statement.cancelled() and statement.exception() is not None:
        logger.info("a timed-out commit failed later: %r", statement.exception())
