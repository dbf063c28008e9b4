"""Short real runs: the load tester against two Blendtune processes, and against a baseline.

Real server processes, real PostgreSQL and Redis, real client processes. A few seconds each;
they assert what the run saw (every message delivered, in order, acknowledged), never speed.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
from rich.console import Console

from loadtest import report as reporting
from loadtest import runner, seed
from tests.conftest import StartServer
from tests.support import ROOT, Backends, eventually, free_port, reachable

KIND_ENV = {"BLENDTUNE_ROOM_KINDS": "loadtest.kind:LoadTestKind"}


def quiet() -> Console:
    return Console(file=io.StringIO(), width=100)


async def test_blendtune_mode_against_two_processes(
    start_server: StartServer, backends: Backends, db: asyncpg.Connection, tmp_path: Path
) -> None:
    a, b = await asyncio.gather(start_server(env=KIND_ENV), start_server(env=KIND_ENV))
    seeded = await seed.seed(backends.database_url, "loadtest", rooms=4, members=3)
    options = runner.RunOptions(
        urls=[a.url, b.url],
        shape="test",
        mode="blendtune",
        rooms=4,
        members=3,
        presence_rate=5.0,
        op_rate=2.0,
        duration=3.0,
        processes=2,
        drain=1.5,
        # Members drop and come back, resuming from the last seq they saw.
        churn_rate=4.0,
        room_ids=seeded.rooms,
        tokens=seeded.tokens,
    )
    report, dists = await asyncio.to_thread(runner.run, options, quiet())

    assert report.errors == []
    c = report.connections
    assert (c.held_at_end, c.connect_failures, c.disconnects) == (12, 0, 0)
    reconnects = c.opened - 12
    assert reconnects > 0
    assert c.resumes + c.resyncs == reconnects
    p = report.presence
    assert p.sent > 0 and p.expected == p.sent * 2
    assert p.duplicates == 0
    # Presence may be coalesced, never invented: what arrived plus what was skipped is
    # exactly what was sent to each member.
    assert p.received + p.skipped <= p.expected
    assert p.latency.count == p.received
    o = report.ops
    assert o.sent > 0
    # Across reconnects too: every batch acknowledged once (re-sent ones are deduplicated by
    # op id), and every member saw the room's batches in order, without gaps or repeats.
    assert (o.acked, o.rejected) == (o.sent, 0)
    assert (o.gaps, o.duplicates) == (0, 0)
    assert o.received == o.expected == o.acked * 2
    assert o.ack_latency.count == o.acked
    # Every acknowledged batch is durable, in one order per room.
    rows = await db.fetch(
        "SELECT room_id, count(*) AS n, max(seq) AS top FROM room_ops"
        " WHERE room_id = ANY($1::uuid[]) GROUP BY room_id",
        seeded.rooms,
    )
    assert sum(r["n"] for r in rows) == o.acked
    assert all(r["n"] == r["top"] for r in rows)
    # The servers were found and measured.
    assert {u.port for u in report.server} >= {a.port, b.port}

    reporting.write_json(report, str(tmp_path / "r.json"))
    reporting.plot(report, dists, str(tmp_path / "r.png"))
    assert json.loads((tmp_path / "r.json").read_text())["ops"]["acked"] == o.acked
    assert (tmp_path / "r.png").stat().st_size > 10_000


async def test_simple_mode_against_the_bare_baseline(backends: Backends) -> None:
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.bare_broadcast",
                "--port",
                str(port),
                "--redis-url",
                backends.redis_url,
                "--prefix",
                backends.redis_prefix + "bare:",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            await eventually(
                functools.partial(asyncio.to_thread, reachable, "127.0.0.1", port),
                what=f"the bare server on port {port}",
            )
        options = runner.RunOptions(
            urls=[f"http://127.0.0.1:{port}" for port in ports],
            shape="test",
            mode="simple",
            rooms=5,
            members=4,
            presence_rate=5.0,
            op_rate=0.0,
            duration=2.0,
            processes=2,
            drain=1.0,
        )
        report, _ = await asyncio.to_thread(runner.run, options, quiet())
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    assert report.connections.held_at_end == 20
    p = report.presence
    assert p.sent > 0
    # The baseline neither coalesces nor drops: every update reaches the 3 other members.
    assert p.received == p.expected == p.sent * 3
    assert (p.skipped, p.duplicates) == (0, 0)
