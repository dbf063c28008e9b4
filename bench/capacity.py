"""How far each server goes: the highest rate it sustains, shape by shape, in one run.

    python -m bench.capacity                    # the full sweep: 10 to 13 minutes
    python -m bench.capacity --quick            # tiny shapes, short steps: about a minute
    python -m bench.capacity --shapes small,ops --servers blendtune,bare --repeats 3

For each shape and each server, a search over the rate finds the highest one at which the
server *sustains* it: p99 from scheduled send to receipt <= --p99-ms (50) (durable ops: to the
ack), 100 % of the updates delivered (every member got every other member's every update;
Blendtune's coalescing of a superseded update counts as not delivered unless
--count-coalesced), every connection held, no error, and for ops no missing ack, gap or
duplicate. The shapes: small rooms (1,000 x 2), large rooms (100 x 20), one huge room
(1 x 2,000) and durable ops (100 x 10, Blendtune only: the baselines have no ops).

The servers are the ones of ``bench.compare`` (``bench.servers``): two processes of each on
one redis-server of the run's own, Blendtune on a fresh database. The load tester keeps every
member's connection for the whole search (``loadtest.runner.Session``) and changes the rate
step by step: each step sends at the rate for --settle seconds (not measured: queues reach
their level), then --duration measured seconds, then receives for --drain seconds.

The search (``search``): from the shape's starting guess, multiply the rate by --factor
until a step fails (or divide until one passes), then bisect geometrically between the
highest passing and the lowest failing rate until they are within --precision. Each search
is repeated --repeats times (later ones start at the rate that failed just above the earlier
result, with a narrower bracket), the servers taking turns, so that the machine's moods fall
on all of them; the table gives the median and the spread.

The machine has two cores for the servers, their Redis, PostgreSQL and the load generator.
``--pin split`` (the default on two or more CPUs) puts the servers and their Redis on the
first CPU and the load generator on the last, so the generator's work never shows up as the
server's latency and each side's saturation can be seen; every step records the CPU of each
process (psutil, once a second) and how busy each CPU was, and the first failing step above
the capacity says what bounded it. The load average at the start of the run, and of each
step, goes into the report: on a shared machine, read the ratios.

Writes the JSON (every step) and a PNG (p99 against offered rate, per shape) to
``reports/capacity-<time>.{json,png}`` unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import servers
from bench.servers import KINDS, Backends, Target
from loadtest import runner, seed
from loadtest.report import Machine, Report, machine

SERVERS = ("blendtune", *servers.BASELINES)


class Shape(msgspec.Struct, frozen=True, kw_only=True):
    """A room layout the search runs on, and where on the rate axis (per member, Hz)."""

    name: str
    label: str
    rooms: int
    members: int
    ops: bool = False  # durable op batches (ack latency) instead of presence
    guess: float  # the first rate tried
    low: float  # never below: a server failing here has capacity "< low"
    high: float  # never above: a server passing here has capacity ">= high"

    @property
    def connections(self) -> int:
        return self.rooms * self.members


# Blendtune limits each connection to 50 messages a second (BLENDTUNE_WS_OPS_PER_SECOND):
# no search goes above 40 Hz per member, so the limit is never what a step measures. The
# first rates tried are below what the servers sustain on this machine: a search climbs to
# its first failure, so no server is first thrown far past its ceiling (a bare ASGI server
# at 4x its ceiling had its connections reset).
SHAPES = {
    s.name: s
    for s in (
        Shape(name="small", label="small rooms", rooms=1000, members=2, guess=1, low=0.05, high=40),
        Shape(name="large", label="large rooms", rooms=100, members=20, guess=0.5, low=0.01,
              high=40),
        Shape(name="huge", label="huge room", rooms=1, members=2000, guess=0.005, low=1e-4, high=1),
        Shape(name="ops", label="durable ops", rooms=100, members=10, guess=1, low=0.05, high=40,
              ops=True),
    )
}  # fmt: skip
# --quick: the same four, tiny, to check the machinery (and the test) in seconds.
QUICK_SHAPES = {
    s.name: s
    for s in (
        Shape(name="small", label="small rooms", rooms=20, members=2, guess=5, low=0.5, high=40),
        Shape(name="large", label="large rooms", rooms=4, members=5, guess=5, low=0.5, high=40),
        Shape(name="huge", label="huge room", rooms=1, members=40, guess=2, low=0.1, high=40),
        Shape(name="ops", label="durable ops", rooms=5, members=3, guess=5, low=0.5, high=40,
              ops=True),
    )
}  # fmt: skip


class Timing(msgspec.Struct, frozen=True, kw_only=True):
    warmup: float  # seconds at half the first rate before a server's first search (unmeasured)
    settle: float  # seconds at a step's rate before measuring
    duration: float  # measured seconds per step
    drain: float  # seconds of receiving after a step's last send
    quiet: float  # after a failed step, wait at most this long for its backlog to drain
    factor: float  # the first search: x or / this until the bracket is found
    refine: float  # later searches: start near the earlier result (restart_at), x or / this
    precision: float  # stop when lowest failing / highest passing <= 1 + precision
    max_steps: int  # per first search
    refine_steps: int  # per later search
    repeats: int


FULL = Timing(
    warmup=2.0,
    settle=1.0,
    duration=4.0,
    drain=1.0,
    quiet=15.0,
    factor=2.0,
    refine=1.2,
    precision=0.2,
    max_steps=7,
    refine_steps=4,
    repeats=2,
)
QUICK = Timing(
    warmup=0.5,
    settle=0.3,
    duration=1.0,
    drain=0.3,
    quiet=2.0,
    factor=4.0,
    refine=2.0,
    precision=0.5,
    max_steps=5,
    refine_steps=3,
    repeats=1,
)


class Bar(msgspec.Struct, frozen=True, kw_only=True):
    p99_ms: float = 50.0
    count_coalesced: bool = False  # a superseded (coalesced) presence update counts as delivered


class ProcessCpu(msgspec.Struct, frozen=True, kw_only=True):
    role: str  # "server", "redis", "postgres", "generator"
    name: str
    mean_pct: float  # of one core
    max_pct: float


class Step(msgspec.Struct, kw_only=True):
    """One measured step of a search, with what the bar needs and the evidence around it."""

    server: str
    shape: str
    repeat: int
    rate: float  # per member, Hz
    offered_per_s: float  # rate x connections: publishes (or op batches) per second
    passed: bool
    why: list[str]  # the bars missed; empty when passed
    started_at: str
    load_average: float  # 1-minute, at the start of the step
    publishes_per_s: float  # presence publishes or op batches sent, per second
    deliveries_per_s: float
    delivered_pct: float
    coalesced_pct: float
    p50_ms: float  # presence delivery, or ack for ops
    p99_ms: float
    max_ms: float
    acked_per_s: float = 0.0
    gaps: int = 0
    duplicates: int = 0
    commit_mean_ms: float = 0.0  # ops: the servers' mean group commit
    batches_per_commit: float = 0.0
    held: int
    target: int
    disconnects: int
    errors: list[str]
    generator_lag_p99_ms: float
    cpu: list[ProcessCpu]  # servers, Redis, PostgreSQL backends, the generator
    cpu_busy: list[float]  # each CPU of the machine, whoever used it


class Search(msgspec.Struct, kw_only=True):
    server: str
    shape: str
    repeat: int
    capacity: float | None  # highest passing rate per member; None: even the lowest failed
    failed_above: float | None  # lowest failing rate above it; None: passed at the top
    steps: list[Step]


class Capacity(msgspec.Struct, kw_only=True):
    """One server on one shape: its searches, summarised."""

    server: str
    shape: str
    unit: str  # "publishes/s" or "acked batches/s"
    median: float  # at the capacity (0 when even the lowest rate failed)
    low: float
    high: float
    capped: bool  # passed at the top of the range: the capacity is at least this
    deliveries_per_s: float  # at the median search's capacity
    p99_ms: float  # there
    bound: str  # what the first failing step above it ran into
    searches: list[Search]
    inconclusive: int = 0  # searches with no passing step (left out of the median)
    below: float = 0.0  # the lowest rate those tried (all failed)


class Join(msgspec.Struct, kw_only=True):
    """Connecting a shape's members to one server in a burst, then the warm-up step."""

    server: str
    shape: str
    target: int
    seconds: float  # until every member had its welcome (or failed)
    connect_p50_ms: float
    connect_p99_ms: float
    connect_max_ms: float
    connect_failures: int
    closed_by_server: dict[str, int]  # close code -> count, during the burst and the warm-up
    held: int  # at the end of the warm-up


class Profile(msgspec.Struct, kw_only=True):
    """py-spy on the server processes for one step at the capacity found."""

    server: str
    shape: str
    rate: float  # per member
    samples: int
    packages: dict[str, float]  # self time per package, percent of the samples
    top: list[tuple[str, float]]  # the frames with the most self time, percent


class Ratio(msgspec.Struct, frozen=True, kw_only=True):
    shape: str
    baseline: str
    ratio: float  # Blendtune's median capacity / the baseline's
    # "=": both measured; ">=": Blendtune passed at the top of the range (so did not fail);
    # "<=": the baseline did; "?": both did (the range was too low to tell them apart).
    bound: str = "="


class Pinning(msgspec.Struct, frozen=True, kw_only=True):
    mode: str  # "split" or "none"
    servers: list[int]  # CPUs of the servers and their Redis (empty: any)
    generator: list[int]  # CPUs of the load generator (empty: any)


class CapacityRun(msgspec.Struct, kw_only=True):
    version: int = 1
    started_at: str
    finished_at: str = ""
    seconds: float = 0.0
    load_average_at_start: list[float]  # 1, 5, 15 minutes
    nice: int = 0  # the run's niceness (its servers and generator inherit it)
    machine: Machine
    pinning: Pinning
    server_processes: int
    client_processes: int
    quick: bool
    bar: Bar
    timing: Timing
    shapes: list[Shape]
    results: list[Capacity] = []
    ratios: list[Ratio] = []
    profiles: list[Profile] = []
    joins: list[Join] = []
    errors: list[str] = []  # shapes that crashed (not a missed bar)


# The search, apart from any server: what the test checks with a rule of its own.


def search(
    passes: Callable[[float], bool],
    guess: float,
    low: float,
    high: float,
    factor: float,
    precision: float,
    max_steps: int,
) -> tuple[float | None, float | None]:
    """Highest rate that passed and lowest rate above it that failed.

    Starts at ``guess``; while nothing has failed, multiplies by ``factor`` (up to ``high``);
    while nothing has passed, divides (down to ``low``); then bisects geometrically (the
    rates span orders of magnitude) until failed / passed <= 1 + precision. Returns
    (None, lowest failing) when even ``low`` failed and (highest, None) when ``high``
    passed. Every rate is measured once: a noisy step decides, and the repeats show it.
    """
    passed: float | None = None
    failed: float | None = None
    rate = min(max(guess, low), high)
    for _ in range(max_steps):
        if passes(rate):
            passed = rate if passed is None else max(passed, rate)
        else:
            failed = rate if failed is None else min(failed, rate)
        if failed is None:
            assert passed is not None
            if passed >= high:
                break
            rate = min(high, passed * factor)
        elif passed is None:
            if failed <= low:
                break
            rate = max(low, failed / factor)
        else:
            if failed / passed <= 1 + precision:
                break
            rate = math.sqrt(passed * failed)
    return passed, failed


def judge(report: Report, ops: bool, bar: Bar) -> list[str]:
    """The bars a step missed (empty: it passed)."""
    why = []
    c = report.connections
    if c.held_at_end < c.target:
        why.append(f"held {c.held_at_end}/{c.target}")
    if c.disconnects:
        why.append(f"{c.disconnects} closed by the server")
    if ops:
        o = report.ops
        if o.sent == 0:
            why.append("nothing sent")
        if o.acked < o.sent:
            why.append(f"{o.sent - o.acked} of {o.sent} acks missing")
        if o.rejected:
            why.append(f"{o.rejected} rejected")
        if o.gaps or o.duplicates:
            why.append(f"{o.gaps} gaps, {o.duplicates} duplicates")
        if o.ack_latency.p99_ms > bar.p99_ms:
            why.append(f"ack p99 {o.ack_latency.p99_ms:.3g} ms")
    else:
        p = report.presence
        if p.sent == 0:
            why.append("nothing sent")
        arrived = p.received + (p.skipped if bar.count_coalesced else 0)
        if arrived < p.expected:
            missing = 100.0 * (p.expected - arrived) / p.expected
            why.append(
                f"{missing:.3g} % not delivered"
                + (f" ({p.skipped:,} coalesced)" if p.skipped and not bar.count_coalesced else "")
            )
        if p.duplicates:
            why.append(f"{p.duplicates} duplicates")
        if p.latency.p99_ms > bar.p99_ms:
            why.append(f"p99 {p.latency.p99_ms:.3g} ms")
    if report.errors:
        why.append(f"error: {report.errors[0]}"[:120])
    return why


def cpu_of(report: Report, redis_port: int) -> list[ProcessCpu]:
    out = []
    for u in report.server:
        role = "redis" if u.port == redis_port else "postgres" if u.port == 0 else "server"
        name = f"{role} :{u.port}" if role == "server" else u.name
        out.append(ProcessCpu(role=role, name=name, mean_pct=u.cpu_mean_pct, max_pct=u.cpu_max_pct))
    out.append(
        ProcessCpu(
            role="generator",
            name="load generator (all client processes)",
            mean_pct=report.generator_cpu_pct,
            max_pct=report.generator_cpu_pct,
        )
    )
    return out


def record(
    report: Report,
    *,
    target: Target,
    shape: Shape,
    repeat: int,
    rate: float,
    bar: Bar,
    load_average: float,
    redis_port: int,
) -> Step:
    p, o = report.presence, report.ops
    metrics = [m for m in report.server_metrics if m.commits]
    commits = sum(m.commits for m in metrics)
    why = judge(report, shape.ops, bar)
    latency = o.ack_latency if shape.ops else p.latency
    return Step(
        server=target.name,
        shape=shape.name,
        repeat=repeat,
        rate=rate,
        offered_per_s=rate * shape.connections,
        passed=not why,
        why=why,
        started_at=report.started_at,
        load_average=round(load_average, 2),
        publishes_per_s=o.sent / report.measured_seconds if shape.ops else p.publishes_per_s,
        deliveries_per_s=o.deliveries_per_s if shape.ops else p.deliveries_per_s,
        delivered_pct=o.delivered_pct if shape.ops else p.delivered_pct,
        coalesced_pct=round(100.0 * p.skipped / p.expected, 3) if p.expected else 0.0,
        p50_ms=latency.p50_ms,
        p99_ms=latency.p99_ms,
        max_ms=latency.max_ms,
        acked_per_s=o.acked_per_s,
        gaps=o.gaps,
        duplicates=o.duplicates + p.duplicates,
        commit_mean_ms=round(
            sum(m.commit_mean_ms * m.commits for m in metrics) / commits if commits else 0.0, 2
        ),
        batches_per_commit=round(
            sum(m.batches_per_commit * m.commits for m in metrics) / commits, 2
        )
        if commits
        else 0.0,
        held=report.connections.held_at_end,
        target=report.connections.target,
        disconnects=report.connections.disconnects,
        errors=report.errors[:5],
        generator_lag_p99_ms=report.generator_lag.p99_ms,
        cpu=cpu_of(report, redis_port),
        cpu_busy=report.cpu_busy,
    )


def bound(step: Step, pinning: Pinning) -> str:
    """What the step ran into, from the CPU samples: a full core, a process at a full core,
    or none (then it is latency: queues, the database, the machine's other load)."""
    servers_ = sum(c.mean_pct for c in step.cpu if c.role == "server")
    redis = sum(c.mean_pct for c in step.cpu if c.role == "redis")
    postgres = sum(c.mean_pct for c in step.cpu if c.role == "postgres")
    generator = sum(c.mean_pct for c in step.cpu if c.role == "generator")
    ours = f"servers {servers_:.0f} %, Redis {redis:.0f} %, generator {generator:.0f} %"
    if postgres:
        ours += f", PostgreSQL backends {postgres:.0f} %"
    if step.commit_mean_ms:
        ours += f", group commit {step.commit_mean_ms:g} ms x {step.batches_per_commit:g}"
    full = []
    busy = step.cpu_busy
    if pinning.mode == "split" and busy:
        server_busy = max(busy[c] for c in pinning.servers if c < len(busy))
        generator_busy = max(busy[c] for c in pinning.generator if c < len(busy))
        if server_busy >= 90:
            others = max(0.0, server_busy - servers_ - redis)
            full.append(
                f"the servers' CPU was {server_busy:.0f} % busy (processes outside the run, or "
                f"PostgreSQL, ~{others:.0f} %)"
            )
        if generator_busy >= 90:
            full.append(f"the generator's CPU was {generator_busy:.0f} % busy")
    elif busy:
        total = sum(busy)
        if total >= 90 * len(busy):
            others = max(0.0, total - servers_ - redis - postgres - generator)
            full.append(f"the machine was {total:.0f} % busy (others ~{others:.0f} %)")
    single = [c for c in step.cpu if c.role != "generator" and c.mean_pct >= 85]
    for c in single:
        full.append(f"{c.name} at {c.mean_pct:.0f} % of a core")
    head = "; ".join(full) if full else "no CPU full"
    return f"{head} ({ours}; missed: {', '.join(step.why)})"


# Running it against servers.


T = TypeVar("T")


def rotate(items: Sequence[T], by: int) -> list[T]:
    by %= max(1, len(items))
    return [*items[by:], *items[:by]]


def options_for(
    target: Target,
    shape: Shape,
    seeded: seed.Seeded | None,
    processes: int,
    redis_port: int,
) -> runner.RunOptions:
    options = runner.RunOptions(
        urls=target.urls,
        shape=f"capacity-{shape.name}",
        mode=target.mode,
        rooms=shape.rooms,
        members=shape.members,
        presence_rate=0.0,
        op_rate=0.0,
        duration=0.0,
        processes=processes,
        watch_ports=[redis_port],
    )
    if target.mode == "blendtune":
        assert seeded is not None
        options.room_ids = seeded.rooms[: shape.rooms]
        options.tokens = seeded.tokens[: shape.connections]
    return options


def database_pids(database_url: str) -> dict[str, int]:
    """PostgreSQL's processes serving the run's database, and its WAL writer (shared with
    everyone on that PostgreSQL, but the one that flushes the commits)."""
    import asyncpg

    async def query() -> dict[str, int]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT pid, backend_type FROM pg_stat_activity"
                " WHERE (datname = current_database() AND pid <> pg_backend_pid())"
                " OR backend_type = 'walwriter'"
            )
        finally:
            await conn.close()
        return {f"postgres {r['backend_type']} {r['pid']}": int(r["pid"]) for r in rows}

    try:
        return asyncio.run(query())
    except OSError:
        return {}


class Sweep:
    """Runs the searches of one shape for several servers, over live sessions."""

    def __init__(
        self,
        *,
        timing: Timing,
        bar: Bar,
        pinning: Pinning,
        redis_port: int,
        on_step: Callable[[Step], None],
        database_url: str | None = None,
    ) -> None:
        self.timing = timing
        self.bar = bar
        self.pinning = pinning
        self.redis_port = redis_port
        self.on_step = on_step
        self.database_url = database_url

    def warm(self, session: runner.Session, target: Target, shape: Shape) -> Join:
        """An unmeasured step at half the first rate: the first messages through a freshly
        connected server (subscriptions, caches, the allocator) should not decide a step.
        Its report also holds how the join burst went (the first step carries the connects)."""
        rate = max(shape.low, shape.guess / 2)
        report, _ = session.step(
            0.0 if shape.ops else rate,
            rate if shape.ops else 0.0,
            max(self.timing.warmup, 0.1),
            drain=self.timing.drain,
        )
        # Whatever the warm-up left queued (a commit backlog, for ops) drains first.
        session.wait_quiet(max(200.0, 0.02 * rate * shape.connections * shape.members), 15.0)
        c = report.connections
        return Join(
            server=target.name,
            shape=shape.name,
            target=c.target,
            seconds=round(session.connected_in, 2),
            connect_p50_ms=c.connect_latency.p50_ms,
            connect_p99_ms=c.connect_latency.p99_ms,
            connect_max_ms=c.connect_latency.max_ms,
            connect_failures=c.connect_failures,
            closed_by_server=c.close_codes,
            held=c.held_at_end,
        )

    def find(
        self,
        session: runner.Session,
        target: Target,
        shape: Shape,
        repeat: int,
        start: float | None = None,
    ) -> Search:
        """One search for ``target``'s capacity on ``shape`` over a connected session;
        ``start``: begin there with the narrower bracket (a repeat)."""
        t = self.timing
        steps: list[Step] = []

        def passes(rate: float) -> bool:
            if shape.ops and self.database_url and session.sampler is not None:
                for label, pid in database_pids(self.database_url).items():
                    session.sampler.watch(label, pid)
            load = os.getloadavg()[0]
            report, _ = session.step(
                0.0 if shape.ops else rate,
                rate if shape.ops else 0.0,
                t.duration,
                settle=t.settle,
                drain=t.drain,
            )
            step = record(
                report,
                target=target,
                shape=shape,
                repeat=repeat,
                rate=rate,
                bar=self.bar,
                load_average=load,
                redis_port=self.redis_port,
            )
            steps.append(step)
            self.on_step(step)
            if not step.passed and t.quiet > 0:
                # An overloaded server may still be sending the step's backlog: the next
                # (lower) rate must not pay for it. Quiet: well under the step's delivery
                # rate, and above the idle heartbeats (a ping per connection per 20 s).
                deliveries = step.offered_per_s * shape.members
                session.wait_quiet(max(200.0, 0.02 * deliveries), t.quiet)
            return step.passed

        guess = shape.guess if start is None else start
        factor = t.factor if start is None else t.refine
        steps_at_most = t.max_steps if start is None else t.refine_steps
        passed, failed = search(
            passes, guess, shape.low, shape.high, factor, t.precision, steps_at_most
        )
        return Search(
            server=target.name,
            shape=shape.name,
            repeat=repeat,
            capacity=passed,
            failed_above=failed,
            steps=steps,
        )


def profile_at(
    session: runner.Session, target: Target, shape: Shape, rate: float, timing: Timing, prefix: str
) -> Profile | None:
    """One more step at ``rate`` with py-spy on the server processes (self time by package,
    summed over them): where a server's time goes at its ceiling."""
    from loadtest import flame

    report, _ = session.step(
        0.0 if shape.ops else rate,
        rate if shape.ops else 0.0,
        timing.duration,
        settle=timing.settle,
        drain=timing.drain,
        profile=f"{prefix}-{shape.name}-{target.name}",
    )
    lines: list[str] = []
    for path in report.profiles:
        with contextlib.suppress(OSError), open(path) as f:
            lines.extend(f.readlines())
    if not lines:
        return None
    total, packages = flame.by_package(lines)
    _, self_time, _ = flame.summarise(lines)
    if not total:
        return None
    return Profile(
        server=target.name,
        shape=shape.name,
        rate=rate,
        samples=total,
        packages={k: round(100 * v / total, 1) for k, v in packages.most_common(8)},
        top=[(k, round(100 * v / total, 1)) for k, v in self_time.most_common(8)],
    )


def restart_at(earlier: Sequence[Search], timing: Timing) -> float | None:
    """Where a repeat starts: at the rate that failed just above the earlier capacity (the
    boundary is measured again, and a capacity an unlucky step pulled down can climb back),
    or a step above the earlier capacity when nothing above it failed; None: from the guess."""
    above = [s.failed_above for s in earlier if s.failed_above and s.capacity]
    if above:
        return statistics.median(above)
    found = [s.capacity for s in earlier if s.capacity]
    return statistics.median(found) * timing.refine if found else None


def summarise(shape: Shape, name: str, searches: list[Search], pinning: Pinning) -> Capacity:
    def at(s: Search) -> Step | None:
        return next((x for x in s.steps if x.passed and x.rate == s.capacity), None)

    def figure(s: Search) -> float:
        step = at(s)
        if step is None:
            return 0.0
        return step.acked_per_s if shape.ops else step.offered_per_s

    # A search that passed nowhere (every step it had failed) says "below its lowest rate",
    # not "zero": it is left out of the median and reported beside it.
    conclusive = [s for s in searches if s.capacity is not None]
    values = sorted(figure(s) for s in conclusive)
    median = statistics.median(values) if values else 0.0
    failed_only = [x.offered_per_s for s in searches if s.capacity is None for x in s.steps]
    # The search whose capacity is the median's (or nearest), for the figures there.
    pool = conclusive or searches
    middle = min(pool, key=lambda s: abs(figure(s) - median)) if pool else None
    there = at(middle) if middle is not None else None
    above = None
    if middle is not None:
        failing = [x for x in middle.steps if not x.passed]
        if middle.failed_above is not None:
            above = next((x for x in failing if x.rate == middle.failed_above), None)
        elif failing:
            above = failing[0]
    return Capacity(
        server=name,
        shape=shape.name,
        unit="acked batches/s" if shape.ops else "publishes/s",
        median=round(median, 3),
        low=round(values[0], 3) if values else 0.0,
        high=round(values[-1], 3) if values else 0.0,
        capped=bool(searches) and all(s.failed_above is None for s in searches),
        deliveries_per_s=there.deliveries_per_s if there else 0.0,
        p99_ms=there.p99_ms if there else 0.0,
        bound=bound(above, pinning) if above is not None else "never failed up to the top rate",
        searches=searches,
        inconclusive=len(searches) - len(conclusive),
        below=min(failed_only) if failed_only else 0.0,
    )


def ratios_of(shape: Shape, summaries: dict[str, Capacity]) -> list[Ratio]:
    """Blendtune's median capacity over each baseline's, with what a capped side means."""
    out = []
    mine = summaries.get("blendtune")
    for name, theirs in summaries.items():
        if mine is not None and name != "blendtune" and theirs.median:
            kind = {(False, False): "=", (True, False): ">=", (False, True): "<="}.get(
                (mine.capped, theirs.capped), "?"
            )
            ratio = round(mine.median / theirs.median, 2)
            out.append(Ratio(shape=shape.name, baseline=name, ratio=ratio, bound=kind))
    return out


def resummarise(run: CapacityRun) -> None:
    """Summaries and ratios again from the searches a run recorded (what --show prints)."""
    shapes = {s.name: s for s in run.shapes}
    results: list[Capacity] = []
    ratios: list[Ratio] = []
    for shape_name in dict.fromkeys(c.shape for c in run.results):
        shape = shapes[shape_name]
        summaries = {
            c.server: summarise(shape, c.server, c.searches, run.pinning)
            for c in run.results
            if c.shape == shape_name
        }
        results.extend(summaries.values())
        ratios.extend(ratios_of(shape, summaries))
    run.results, run.ratios = results, ratios


@contextlib.contextmanager
def sessions(
    targets: Sequence[Target],
    shape: Shape,
    seeded: seed.Seeded | None,
    processes: int,
    redis_port: int,
    console: Console,
) -> Iterator[dict[str, runner.Session]]:
    """A connected load-tester session per server (connected one after the other)."""
    quiet = Console(file=open(os.devnull, "w"))  # closed with the stack
    with contextlib.ExitStack() as stack:
        stack.callback(quiet.file.close)
        out = {}
        for target in targets:
            console.log(
                f"{shape.label}: connecting {shape.connections:,} members to {target.label}"
            )
            session = runner.Session(
                options_for(target, shape, seeded, processes, redis_port), quiet
            )
            out[target.name] = stack.enter_context(session)
        yield out


def run_sweep(
    *,
    on: Backends,
    targets: Sequence[Target],
    shapes: Sequence[Shape],
    timing: Timing,
    bar: Bar,
    pinning: Pinning,
    processes: int,
    console: Console,
    progress: Progress | None = None,
    profile: str = "",
    into: CapacityRun,
    after_shape: Callable[[], None] = lambda: None,
) -> None:
    """Every search of every shape, into ``into``: the summaries, Blendtune's ratios to each
    baseline, the join bursts and (``profile``: a path prefix for py-spy's output) Blendtune's
    profile at its capacity. A shape that fails (a crash, not a missed bar) is recorded in
    its errors and the sweep goes on; ``after_shape`` runs after each (to save progress)."""
    task = None
    if progress is not None:
        per_server = 6 + 3 * (timing.repeats - 1)  # a guess, for the bar
        total = sum(per_server * len([t for t in targets if usable(t, s)]) for s in shapes)
        task = progress.add_task("sweep", total=total)

    ops = {s.name for s in shapes if s.ops}

    def on_step(step: Step) -> None:
        mark = "[green]pass[/green]" if step.passed else "[red]FAIL[/red]"
        if step.shape in ops:
            figure = f"ack p99 {step.p99_ms:.3g} ms, {step.acked_per_s:,.0f} acked/s"
        else:
            figure = f"p99 {step.p99_ms:.3g} ms, {step.deliveries_per_s:,.0f} deliveries/s"
        console.log(
            f"{step.shape} {KINDS[step.server].label} #{step.repeat + 1}: "
            f"{step.offered_per_s:,.1f}/s ({step.rate:.4g} Hz/member) {mark} {figure}"
            + (f" [dim]({'; '.join(step.why)})[/dim]" if step.why else "")
            + f" [dim]load {step.load_average:g}[/dim]"
        )
        if progress is not None and task is not None:
            progress.advance(task)

    def sweep_shape(shape: Shape) -> None:
        chosen = [t for t in targets if usable(t, shape)]
        seeded = None
        if any(t.mode == "blendtune" for t in chosen):
            seeded = asyncio.run(seed.seed(on.database_url, "loadtest", shape.rooms, shape.members))
        sweep = Sweep(
            timing=timing,
            bar=bar,
            pinning=pinning,
            redis_port=on.redis_port,
            on_step=on_step,
            database_url=on.database_url,
        )
        found: dict[str, list[Search]] = {t.name: [] for t in chosen}
        with sessions(chosen, shape, seeded, processes, on.redis_port, console) as live:
            for repeat in range(timing.repeats):
                for target in rotate(chosen, repeat):
                    if progress is not None and task is not None:
                        progress.update(
                            task, description=f"{shape.label}: {target.label} #{repeat + 1}"
                        )
                    if repeat == 0:
                        into.joins.append(sweep.warm(live[target.name], target, shape))
                    start = restart_at(found[target.name], timing)
                    found[target.name].append(
                        sweep.find(live[target.name], target, shape, repeat, start)
                    )
            summaries = {t.name: summarise(shape, t.name, found[t.name], pinning) for t in chosen}
            into.results.extend(summaries.values())
            into.ratios.extend(ratios_of(shape, summaries))
            capacities = [s.capacity for s in found.get("blendtune", []) if s.capacity]
            if profile and capacities:
                target = next(t for t in chosen if t.name == "blendtune")
                rate = statistics.median(capacities)
                console.log(f"{shape.label}: profiling {target.label} at {rate:.4g} Hz/member")
                done = profile_at(live[target.name], target, shape, rate, timing, profile)
                if done is not None:
                    into.profiles.append(done)

    for shape in shapes:
        try:
            sweep_shape(shape)
        except Exception as exc:  # keep what the other shapes measured
            console.log(f"[red]{shape.label}: {type(exc).__name__}: {exc}[/red]")
            into.errors.append(f"{shape.name}: {type(exc).__name__}: {exc}")
        after_shape()


def usable(target: Target, shape: Shape) -> bool:
    """The baselines have no ops."""
    return not shape.ops or target.mode == "blendtune"


# Output.


def capacity_table(run: CapacityRun) -> Table:
    names = list(dict.fromkeys(c.server for c in run.results))
    table = Table(
        title=f"capacity: highest rate with p99 <= {run.bar.p99_ms:g} ms and 100 % delivered "
        f"(median of {run.timing.repeats}, min-max)"
    )
    table.add_column("shape", style="bold")
    for name in names:
        table.add_column(KINDS[name].label, justify="right")
    baselines = [n for n in names if n != "blendtune"]
    for name in baselines:
        table.add_column(f"Blendtune / {KINDS[name].label}", justify="right")
    for shape in run.shapes:
        cells = []
        for name in names:
            c = next((c for c in run.results if c.server == name and c.shape == shape.name), None)
            cells.append(cell(c))
        for name in baselines:
            r = next((r for r in run.ratios if r.shape == shape.name and r.baseline == name), None)
            cells.append(ratio_text(r))
        table.add_row(f"{shape.label} ({shape.rooms:,} x {shape.members:,})", *cells)
    return table


def ratio_text(r: Ratio | None) -> str:
    if r is None:
        return "-"
    if r.bound == "?":
        return "? (both at the top)"
    return f"{'' if r.bound == '=' else r.bound + ' '}{r.ratio:.2f}x"


def num(x: float) -> str:
    """Thousands separators for rates, three digits for the huge room's fractions."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def cell(c: Capacity | None) -> str:
    if c is None:
        return "-"
    at_least = ">= " if c.capped else ""
    spread = f" ({num(c.low)}-{num(c.high)})" if len(c.searches) > 1 else ""
    text = f"{at_least}{num(c.median)} {c.unit}{spread}"
    if not c.median:
        tried = [s.offered_per_s for search in c.searches for s in search.steps]
        lowest = f"{min(tried):,.3g}" if tried else "?"
        text = f"< {lowest} {c.unit} (every rate tried failed)"
    elif c.inconclusive:
        text += f" (+{c.inconclusive} search passing nowhere down to {c.below:,.0f}/s)"
    if c.median:
        text += f"\n{c.deliveries_per_s:,.0f} deliveries/s, p99 {c.p99_ms:.3g} ms"
    return text


def bounds_table(run: CapacityRun) -> Table:
    table = Table(title="what the first failing step above the capacity ran into")
    table.add_column("shape / server", style="bold")
    table.add_column("bound (CPU: mean % of one core over the step)")
    for c in run.results:
        table.add_row(f"{c.shape} / {KINDS[c.server].label}", c.bound)
    return table


def aims(run: CapacityRun) -> list[str]:
    """Issue 18's aims, as the run measured them."""
    lines = []

    def get(name: str, shape: str) -> Capacity | None:
        return next((c for c in run.results if c.server == name and c.shape == shape), None)

    for shape in ("small", "large"):
        r = next((r for r in run.ratios if r.shape == shape and r.baseline == "bare"), None)
        if r is not None:
            verdict = "met" if r.ratio >= 1.5 and r.bound in ("=", ">=") else "NOT met"
            if r.bound == "?":
                verdict = "not measured (both at the top of the range)"
            lines.append(f"{shape} rooms: Blendtune >= 1.5x bare ASGI: {ratio_text(r)}, {verdict}")
    huge = get("blendtune", "huge")
    if huge is not None:
        verdict = "met" if huge.deliveries_per_s >= 40_000 else "NOT met"
        lines.append(
            f"huge room: >= 40,000 deliveries/s at p99 <= {run.bar.p99_ms:g} ms: "
            f"{huge.deliveries_per_s:,.0f}, {verdict}"
        )
    join = next((j for j in run.joins if j.server == "blendtune" and j.shape == "huge"), None)
    if join is not None:
        overflows = join.closed_by_server.get("4409", 0)
        verdict = "met" if not overflows and join.held == join.target else "NOT met"
        lines.append(
            f"huge room: {join.target:,} members join in one burst without a send-queue "
            f"overflow: {overflows} closed with 4409 (too slow), held {join.held:,}, {verdict}"
        )
    ops = get("blendtune", "ops")
    if ops is not None:
        verdict = "met" if ops.median >= 5_000 else "NOT met"
        lines.append(f"durable ops: >= 5,000 acked batches/s: {ops.median:,.0f}, {verdict}")
    return lines


def plot(run: CapacityRun, path: str) -> None:
    """Per shape: p99 against the offered rate, every step of every server (o passed,
    x failed), the bar, and each server's capacity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.4g}")

    shapes = run.shapes
    columns = 2 if len(shapes) > 1 else 1
    rows = math.ceil(len(shapes) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.5 * rows), squeeze=False)
    colours = {"blendtune": "tab:blue", "bare": "tab:orange", "channels": "tab:green"}
    load = ", ".join(f"{x:.2f}" for x in run.load_average_at_start)
    fig.suptitle(
        f"capacity sweep {run.started_at}\nload average at start {load}; "
        f"pinning: {run.pinning.mode}"
    )
    for ax, shape in zip(axes.flat, shapes, strict=False):
        for c in (c for c in run.results if c.shape == shape.name):
            steps = [s for search in c.searches for s in search.steps]
            colour = colours.get(c.server, "tab:gray")
            label = f"{KINDS[c.server].label}: {cell(c).splitlines()[0]}"
            good = [s for s in steps if s.passed]
            bad = [s for s in steps if not s.passed]
            ax.scatter(
                [s.offered_per_s for s in good],
                [max(s.p99_ms, 0.1) for s in good],
                marker="o",
                color=colour,
                label=label,
            )
            ax.scatter(
                [s.offered_per_s for s in bad],
                [max(s.p99_ms, 0.1) for s in bad],
                marker="x",
                color=colour,
            )
            if c.median:
                ax.axvline(c.median, color=colour, lw=0.8, ls=":")
        ax.axhline(run.bar.p99_ms, color="red", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        unit = "op batches/s offered" if shape.ops else "publishes/s offered"
        ax.set_xlabel(unit)
        ax.set_ylabel("ack p99 (ms)" if shape.ops else "delivery p99 (ms)")
        ax.set_title(f"{shape.label}: {shape.rooms:,} x {shape.members:,} (o passed, x failed)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for ax in list(axes.flat)[len(shapes) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(runs: Sequence[CapacityRun]) -> str:
    """The runs' capacity tables, bounds, aims and profiles, for docs/performance.md."""
    out: list[str] = []
    for number, run in enumerate(runs, 1):
        load = ", ".join(f"{x:g}" for x in run.load_average_at_start)
        pinned = (
            f"servers and Redis on CPU {run.pinning.servers}, generator on CPU "
            f"{run.pinning.generator}"
            if run.pinning.mode == "split"
            else "no pinning"
        )
        out += [
            f"**Run {number}** ({run.started_at}, {run.seconds / 60:.1f} min; load average at "
            f"start **{load}**; {pinned}; nice {run.nice}; {run.timing.repeats} searches per "
            "server and shape, "
            f"steps {run.timing.settle:g} + {run.timing.duration:g} s measured + "
            f"{run.timing.drain:g} s):",
            "",
        ]
        names = list(dict.fromkeys(c.server for c in run.results))
        baselines = [n for n in names if n != "blendtune"]
        header = ["shape", *(KINDS[n].label for n in names)]
        header += [f"Blendtune / {KINDS[n].label}" for n in baselines]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for shape in run.shapes:
            cells = [f"{shape.label} ({shape.rooms:,} x {shape.members:,})"]
            for name in names:
                c = next(
                    (c for c in run.results if c.server == name and c.shape == shape.name), None
                )
                cells.append(cell(c).replace("\n", "; ") if c else "-")
            for name in baselines:
                r = next(
                    (r for r in run.ratios if r.shape == shape.name and r.baseline == name), None
                )
                cells.append(ratio_text(r))
            out.append("| " + " | ".join(cells) + " |")
        if run.joins:
            out += ["", "Join bursts (every member connecting at once, then the warm-up step):", ""]
            for j in run.joins:
                closed = ", ".join(f"{n} x {code}" for code, n in j.closed_by_server.items())
                out.append(
                    f"- {j.shape} / {KINDS[j.server].label}: {j.target:,} members in "
                    f"{j.seconds:g} s (connect p50 {j.connect_p50_ms:.3g}, p99 "
                    f"{j.connect_p99_ms:.3g}, max {j.connect_max_ms:.3g} ms), "
                    f"{j.connect_failures} failed, closed by the server: {closed or 'none'}, "
                    f"held {j.held:,}"
                )
        out += ["", "What the first failing step above each capacity ran into:", ""]
        out += [f"- {c.shape} / {KINDS[c.server].label}: {c.bound}" for c in run.results]
        if run.profiles:
            out += ["", "Blendtune's servers at their capacity (py-spy, self time by package):", ""]
            packages = sorted({k for p in run.profiles for k in p.packages})
            out += ["| shape | " + " | ".join(packages) + " |", "|" + "---|" * (len(packages) + 1)]
            for p in run.profiles:
                row = [f"{p.packages.get(k, 0):g} %" for k in packages]
                out.append(f"| {p.shape} ({p.samples} samples) | " + " | ".join(row) + " |")
        out += ["", *(f"- aim: {line}" for line in aims(run))]
        out += [*(f"- error (a shape that did not finish): {e}" for e in run.errors), ""]
    return "\n".join(out)


def pin(mode: str) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "split" and len(cpus) >= 2:
        return Pinning(mode="split", servers=cpus[:-1], generator=cpus[-1:])
    return Pinning(mode="none", servers=[], generator=[])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, short steps, once")
    parser.add_argument(
        "--show", nargs="+", metavar="JSON", help="print the tables of earlier runs; run nothing"
    )
    parser.add_argument("--markdown", action="store_true", help="with --show: as Markdown")
    parser.add_argument("--shapes", default="small,large,huge,ops", help="comma-separated")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--repeats", type=int, help="searches per server and shape")
    parser.add_argument("--p99-ms", type=float, default=50.0)
    parser.add_argument(
        "--count-coalesced",
        action="store_true",
        help="count a presence update Blendtune superseded by a newer one as delivered",
    )
    parser.add_argument("--settle", type=float, help="seconds per step before measuring")
    parser.add_argument("--duration", type=float, help="measured seconds per step")
    parser.add_argument("--drain", type=float, help="seconds of receiving after a step")
    parser.add_argument("--precision", type=float, help="bracket to stop at (0.2: 20 %%)")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--server-processes", type=int, default=2)
    parser.add_argument("--pin", choices=["split", "none"], default="split")
    parser.add_argument("--out", help="path prefix for .json and .png (default reports/...)")
    parser.add_argument(
        "--no-profile",
        action="store_true",
        help="skip the py-spy step at Blendtune's capacity (after each shape's searches)",
    )
    args = parser.parse_args(argv)
    # A plain `kill` stops the run through its cleanup (servers, Redis, the database).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.show:
        runs = [msgspec.json.decode(Path(p).read_bytes(), type=CapacityRun) for p in args.show]
        for run_ in runs:
            resummarise(run_)
        console = Console() if sys.stdout.isatty() else Console(width=160)
        if args.markdown:
            print(markdown(runs))
        for run in runs if not args.markdown else []:
            console.print(capacity_table(run))
            console.print(bounds_table(run))
            for line in aims(run):
                console.print(f"aim: {line}")
        return 0
    table = QUICK_SHAPES if args.quick else SHAPES
    try:
        shapes = [table[n.strip()] for n in args.shapes.split(",") if n.strip()]
        names = [n.strip() for n in args.servers.split(",") if n.strip()]
        for name in names:
            KINDS[name]
    except KeyError as exc:
        parser.error(f"unknown shape or server: {exc}")
    timing = msgspec.structs.replace(
        QUICK if args.quick else FULL,
        **{
            k: v
            for k, v in (
                ("repeats", args.repeats),
                ("settle", args.settle),
                ("duration", args.duration),
                ("drain", args.drain),
                ("precision", args.precision),
            )
            if v is not None
        },
    )
    bar = Bar(p99_ms=args.p99_ms, count_coalesced=args.count_coalesced)
    pinning = pin(args.pin)
    started = time.time()
    stamp = datetime.fromtimestamp(started, UTC)
    out_prefix = args.out or str(Path("reports") / f"capacity-{stamp:%Y%m%d-%H%M%S}")
    Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
    run = CapacityRun(
        started_at=stamp.isoformat(timespec="seconds"),
        load_average_at_start=[round(x, 2) for x in os.getloadavg()],
        nice=os.nice(0),
        machine=machine(),
        pinning=pinning,
        server_processes=args.server_processes,
        client_processes=args.processes,
        quick=args.quick,
        bar=bar,
        timing=timing,
        shapes=shapes,
    )
    out = Console() if sys.stdout.isatty() else Console(width=160)
    err = Console(stderr=True)
    load = ", ".join(f"{x:g}" for x in run.load_average_at_start)
    where = ""
    if pinning.mode == "split":
        where = f" (servers and Redis on CPU {pinning.servers}, generator on {pinning.generator})"
    err.print(
        f"[bold]capacity sweep[/bold] {run.started_at}: load average {load} "
        f"({run.machine.cpus} CPUs); pinning {pinning.mode}{where}"
        f"; {args.server_processes} processes per server, {args.processes} client processes; "
        f"steps {timing.settle:g} + {timing.duration:g} + {timing.drain:g} s, "
        f"{timing.repeats} searches per server and shape"
    )

    def save() -> None:
        """The JSON as it stands (after every shape: a run cut short keeps what it measured)."""
        run.seconds = round(time.time() - started, 1)
        with open(out_prefix + ".json", "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(run), indent=2))

    server_cpus = set(pinning.servers) or None
    max_members = max(s.members for s in shapes)
    with servers.backends(server_cpus) as on:
        targets: list[Target] = []
        try:
            for name in names:
                err.log(f"starting {args.server_processes} x {KINDS[name].label}")
                targets.append(
                    servers.start(
                        name,
                        args.server_processes,
                        on,
                        servers.blendtune_env(max_members),
                        server_cpus,
                    )
                )
            if pinning.generator:
                # This process and the client processes it spawns from now on.
                os.sched_setaffinity(0, set(pinning.generator))
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=err, transient=True) as progress:
                run_sweep(
                    on=on,
                    targets=targets,
                    shapes=shapes,
                    timing=timing,
                    bar=bar,
                    pinning=pinning,
                    processes=args.processes,
                    console=progress.console,
                    progress=progress,
                    profile="" if args.no_profile else out_prefix + "-pyspy",
                    into=run,
                    after_shape=save,
                )
        finally:
            servers.stop([p for t in targets for p in t.procs])
    run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    run.seconds = round(time.time() - started, 1)
    out.print(capacity_table(run))
    out.print(bounds_table(run))
    for line in aims(run) if not args.quick else ["none judged (--quick: tiny shapes)"]:
        out.print(f"aim: {line}")
    out.print(
        f"load average at start {load}; {run.seconds / 60:.1f} minutes; "
        f"pinning {pinning.mode}; the machine is shared: read the ratios"
    )
    for error in run.errors:
        out.print(f"[red]error:[/red] {error}")
    save()
    plot(run, out_prefix + ".png")
    out.print(f"report: {out_prefix}.json, plot: {out_prefix}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
