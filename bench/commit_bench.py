"""Durable op batches in PostgreSQL: per-room group commit against one commit for all rooms.

    python -m bench.commit_bench --rooms 200 --rates 1000,2000,4000 --duration 5

The rooms core commits each room's queued batches in one statement (a compare-and-set of
``rooms.seq`` plus the inserts), one writer per room: under load, batches of *one* room are
grouped, but 200 rooms with a few batches each still make 200 statements and 200 WAL
flushes. This experiment measures, on the same database and with the same statement shape
and a pool of 10 connections like a server process has, the ack latency and the throughput
of:

- ``per-room``: what rooms/store.py does (one writer per room, group commit within a room);
- ``all-rooms``: one writer per process that takes every room's queued batches and commits
  them in one statement (a compare-and-set per room and all inserts, via ``unnest``).

Batches arrive open-loop at each offered rate, spread over the rooms. Nothing here touches a
server: it tells whether a process-wide group commit is worth building (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import numpy as np
from rich.console import Console
from rich.table import Table

from bench import servers
from loadtest.stats import Histogram, LatencySummary, summarize

# The fast path of rooms/store.py (one room): compare-and-set the seq, insert the batches.
PER_ROOM = """
WITH upd AS (
    UPDATE rooms SET seq = $3 WHERE id = $1 AND seq = $2 RETURNING seq
), ins AS (
    INSERT INTO room_ops (room_id, seq, author_id, op_id, body)
    SELECT $1, t.seq, t.author, t.op_id, t.body::jsonb
    FROM unnest($4::bigint[], $5::uuid[], $6::text[], $7::text[]) AS t(seq, author, op_id, body)
    WHERE EXISTS (SELECT 1 FROM upd)
    RETURNING 1
)
SELECT (SELECT count(*) FROM upd) AS updated, (SELECT count(*) FROM ins) AS inserted
"""

# The same for many rooms at once: every room's compare-and-set, then the inserts of the
# rooms whose seq matched (a real implementation would retry the others on their own).
ALL_ROOMS = """
WITH want AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS w(room, expected, top)
), upd AS (
    UPDATE rooms r SET seq = w.top FROM want w
    WHERE r.id = w.room AND r.seq = w.expected
    RETURNING r.id
), ins AS (
    INSERT INTO room_ops (room_id, seq, author_id, op_id, body)
    SELECT t.room, t.seq, t.author, t.op_id, t.body::jsonb
    FROM unnest($4::uuid[], $5::bigint[], $6::uuid[], $7::text[], $8::text[])
         AS t(room, seq, author, op_id, body)
    WHERE t.room IN (SELECT id FROM upd)
    RETURNING 1
)
SELECT (SELECT count(*) FROM upd) AS updated, (SELECT count(*) FROM ins) AS inserted
"""

BODY = '{"role":"editor","ops":[{"op":"tick"}]}'
AUTHOR = uuid.UUID(int=1)


@dataclass
class Pending:
    room: int
    op_id: str
    due: float
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Bench:
    def __init__(self, pool: asyncpg.Pool, rooms: list[uuid.UUID]) -> None:
        self.pool = pool
        self.rooms = rooms
        self.seq = dict.fromkeys(range(len(rooms)), 0)
        self.queues: dict[int, list[Pending]] = defaultdict(list)
        self.writers: dict[int, asyncio.Task[None]] = {}
        self.global_queue: list[Pending] = []
        self.global_writer: asyncio.Task[None] | None = None
        self.statements = 0

    # per-room: one writer task per room while it has a queue (as rooms/hub.py does)
    def submit_per_room(self, p: Pending) -> None:
        self.queues[p.room].append(p)
        if p.room not in self.writers:
            self.writers[p.room] = asyncio.get_running_loop().create_task(self.write_room(p.room))

    async def write_room(self, room: int) -> None:
        try:
            while self.queues[room]:
                batch, self.queues[room] = self.queues[room], []
                expected = self.seq[room]
                seqs = list(range(expected + 1, expected + 1 + len(batch)))
                async with self.pool.acquire() as conn:
                    row = await conn.fetchrow(
                        PER_ROOM,
                        self.rooms[room],
                        expected,
                        seqs[-1],
                        seqs,
                        [AUTHOR] * len(batch),
                        [p.op_id for p in batch],
                        [BODY] * len(batch),
                    )
                    assert row is not None
                self.statements += 1
                assert row["updated"] == 1
                self.seq[room] = seqs[-1]
                for p in batch:
                    p.done.set_result(None)
        finally:
            del self.writers[room]

    # all-rooms: one writer for the process
    def submit_all(self, p: Pending) -> None:
        self.global_queue.append(p)
        if self.global_writer is None:
            self.global_writer = asyncio.get_running_loop().create_task(self.write_all())

    async def write_all(self) -> None:
        try:
            while self.global_queue:
                batch, self.global_queue = self.global_queue, []
                by_room: dict[int, list[Pending]] = defaultdict(list)
                for p in batch:
                    by_room[p.room].append(p)
                rooms, expected, top = [], [], []
                i_room, i_seq, i_op = [], [], []
                for room, items in by_room.items():
                    first = self.seq[room]
                    rooms.append(self.rooms[room])
                    expected.append(first)
                    top.append(first + len(items))
                    for k, p in enumerate(items, start=1):
                        i_room.append(self.rooms[room])
                        i_seq.append(first + k)
                        i_op.append(p.op_id)
                async with self.pool.acquire() as conn:
                    row = await conn.fetchrow(
                        ALL_ROOMS,
                        rooms,
                        expected,
                        top,
                        i_room,
                        i_seq,
                        [AUTHOR] * len(i_room),
                        i_op,
                        [BODY] * len(i_room),
                    )
                    assert row is not None
                self.statements += 1
                assert row["updated"] == len(rooms)
                for room, items in by_room.items():
                    self.seq[room] += len(items)
                for p in batch:
                    p.done.set_result(None)
        finally:
            self.global_writer = None


def _acked(p: Pending, _: object) -> None:
    p.due = time.perf_counter() - p.due  # from now on: the ack latency


async def run_one(
    pool: asyncpg.Pool, rooms: list[uuid.UUID], mode: str, rate: float, duration: float
) -> tuple[Histogram, float, int]:
    bench = Bench(pool, rooms)
    async with pool.acquire() as conn:
        seqs = await conn.fetch("SELECT id, seq FROM rooms WHERE id = ANY($1::uuid[])", rooms)
    index = {r: i for i, r in enumerate(rooms)}
    for row in seqs:
        bench.seq[index[row["id"]]] = row["seq"]
    submit = bench.submit_per_room if mode == "per-room" else bench.submit_all
    rng = random.Random(1)
    start = time.perf_counter() + 0.1
    period = 1.0 / rate
    count = int(rate * duration)
    pending: list[Pending] = []
    tag = uuid.uuid4().hex[:8]
    for n in range(count):
        due = start + n * period
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        p = Pending(rng.randrange(len(rooms)), f"{tag}.{n}", due)
        p.done.add_done_callback(functools.partial(_acked, p))
        submit(p)
        pending.append(p)
    await asyncio.gather(*(p.done for p in pending))
    elapsed = time.perf_counter() - start
    h = Histogram()
    h.record_many(np.array([p.due for p in pending]))
    return h, count / elapsed, bench.statements


Row = tuple[str, float, LatencySummary, float, int]


async def main_async(args: argparse.Namespace, database_url: str) -> list[Row]:
    conn = await asyncpg.connect(database_url)
    rooms = [uuid.uuid4() for _ in range(args.rooms)]
    await conn.execute("INSERT INTO rooms (id, kind) SELECT unnest($1::uuid[]), 'loadtest'", rooms)
    await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=10, max_size=10)
    results: list[Row] = []
    try:
        for rate in args.rates:
            for mode in ("per-room", "all-rooms"):
                h, achieved, statements = await run_one(pool, rooms, mode, rate, args.duration)
                results.append((mode, rate, summarize(h), achieved, statements))
    finally:
        await pool.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[1000.0, 2000.0, 4000.0],
    )
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    with servers.database() as database_url:
        try:
            import uvloop

            results = uvloop.run(main_async(args, database_url))
        except ImportError:  # pragma: no cover
            results = asyncio.run(main_async(args, database_url))
    table = Table(title=f"durable batches, {args.rooms} rooms, one process, pool of 10")
    for column in ("mode", "offered/s", "acked/s", "statements/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    for mode, rate, s, achieved, statements in results:
        table.add_row(
            mode,
            f"{rate:,.0f}",
            f"{achieved:,.0f}",
            f"{statements / args.duration:,.0f}",
            f"{s.p50_ms:g}",
            f"{s.p99_ms:g}",
            f"{s.max_ms:g}",
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
