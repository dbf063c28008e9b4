"""The parent process of a run: plans members, starts client processes, shows progress, merges.

Members are spread so that every room has members in several client processes and, by
default, on every server URL (member m of room r goes to process (r*M+m) mod P and to URL
(r+m) mod U): fan-out across server processes and across client processes is exercised.
With placement "room", room r's members all go to URL r mod U instead.
"""

from __future__ import annotations

import multiprocessing
import queue
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from rich.console import Console
from rich.live import Live
from rich.table import Table

from loadtest import report as reporting
from loadtest.modes import Member
from loadtest.resources import Sampler
from loadtest.scrape import Scraper
from loadtest.stats import Counters, Histogram, LatencySummary, merge_counters
from loadtest.worker import Failed, Message, Progress, Result, WorkerPlan, worker_main


@dataclass
class RunOptions:
    urls: list[str]
    shape: str
    mode: str  # "blendtune" or "simple"
    rooms: int
    members: int
    presence_rate: float
    op_rate: float
    duration: float
    processes: int
    compression: bool = False
    churn_rate: float = 0.0
    payload_bytes: int = 178
    drain: float = 2.0
    connect_concurrency: int = 64
    reconnect: bool = True
    watch_ports: list[int] = field(default_factory=list)
    # Blendtune mode: room ids (one per room) and session tokens (one per member slot).
    room_ids: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    kind: str = "loadtest"
    # "spread": every room has members on every URL (cross-process fan-out and sequencing);
    # "room": all members of a room on one URL, as a load balancer hashing the room id would.
    placement: str = "spread"
    # py-spy the local server processes during the run: raw profiles written to
    # <profile>-<port>-<pid>.txt (summarise with ``python -m loadtest.flame``).
    profile: str = ""
    run_name: str = ""


def plan_members(options: RunOptions) -> list[list[Member]]:
    """Members per client process."""
    per_process: list[list[Member]] = [[] for _ in range(options.processes)]
    name = options.run_name or f"lt{int(time.time() * 1000) % 10**9}"
    for r in range(options.rooms):
        room = options.room_ids[r] if options.room_ids else f"{name}-{r}"
        for m in range(options.members):
            g = r * options.members + m
            per_process[g % options.processes].append(
                Member(
                    room=room,
                    room_index=r,
                    index=m,
                    room_size=options.members,
                    url=options.urls[
                        (r + m if options.placement == "spread" else r) % len(options.urls)
                    ],
                    token=options.tokens[g] if options.tokens else "",
                )
            )
    return per_process


def duration_for_messages(messages: int, options: RunOptions) -> float:
    """How long each member must send for about ``messages`` sends in total."""
    per_second = options.rooms * options.members * (options.presence_rate + options.op_rate)
    if per_second <= 0:
        raise ValueError("--messages needs a presence or op rate above zero")
    return messages / per_second


@dataclass
class Live_:
    """What the progress display knows."""

    phase: dict[int, str] = field(default_factory=dict)
    counters: dict[int, Counters] = field(default_factory=dict)
    presence: Histogram = field(default_factory=Histogram)  # recent interval
    acks: Histogram = field(default_factory=Histogram)
    last: Counters = field(default_factory=Counters)
    last_at: float = 0.0
    rates: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _table(options: RunOptions, live: Live_, started: float | None) -> Table:
    total = merge_counters(live.counters.values())
    phases = sorted(set(live.phase.values())) or ["starting"]
    table = Table(title=f"blendtune loadtest: {options.shape} ({options.mode})", min_width=60)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    elapsed = f"{time.time() - started:.0f}/{options.duration:.0f} s" if started else "-"
    table.add_row("phase", ", ".join(phases) + f"  {elapsed}")
    table.add_row(
        "connections held",
        f"{total.connections_held}/{options.rooms * options.members}"
        + (f"  ({total.connect_failures} failed)" if total.connect_failures else ""),
    )
    pub, dlv, ack = live.rates
    table.add_row("presence publishes/s", f"{pub:,.0f}")
    table.add_row("presence deliveries/s", f"{dlv:,.0f}")
    if options.op_rate:
        table.add_row("op batches acked/s", f"{ack:,.0f}")
    if live.presence.total:
        table.add_row("presence p50 / p99 (last second)", _p50_p99(live.presence))
    if live.acks.total:
        table.add_row("ack p50 / p99 (last second)", _p50_p99(live.acks))
    if total.disconnects:
        table.add_row("disconnects", str(total.disconnects))
    return table


def _p50_p99(h: Histogram) -> str:
    return f"{h.percentile(50) * 1e3:.1f} / {h.percentile(99) * 1e3:.1f} ms"


def run(
    options: RunOptions, console: Console | None = None
) -> tuple[reporting.Report, reporting.Distributions]:
    console = console or Console(stderr=True)
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[bytes] = context.Queue()
    go = context.Event()
    start_at = context.Value("d", 0.0)
    plans = plan_members(options)
    procs = []
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(Message)
    for index, members in enumerate(plans):
        plan = WorkerPlan(
            index=index,
            mode=options.mode,
            kind=options.kind,
            members=members,
            presence_rate=options.presence_rate,
            op_rate=options.op_rate,
            duration=options.duration,
            drain=options.drain,
            payload_bytes=options.payload_bytes,
            compression=options.compression,
            connect_concurrency=options.connect_concurrency,
            churn_rate=options.churn_rate / options.processes,
            reconnect=options.reconnect,
        )
        proc = context.Process(
            target=worker_main,
            args=(encoder.encode(plan), messages, go, start_at),
            name=f"loadtest-{index}",
            daemon=True,
        )
        proc.start()
        procs.append(proc)

    live = Live_()
    results: dict[int, Result] = {}
    failures: dict[int, str] = {}
    started: float | None = None
    sampler: Sampler | None = None
    scraper: Scraper | None = None
    profilers: list[tuple[str, subprocess.Popen[bytes]]] = []
    started_at = ""
    with Live(_table(options, live, None), console=console, refresh_per_second=4) as display:
        while len(results) + len(failures) < len(procs):
            try:
                raw = messages.get(timeout=0.25)
            except queue.Empty:
                raw = None
            if raw is not None:
                message = decoder.decode(raw)
                if isinstance(message, Progress):
                    live.phase[message.worker] = message.phase
                    live.counters[message.worker] = message.counters
                    live.presence.merge(Histogram.from_sparse(message.presence))
                    live.acks.merge(Histogram.from_sparse(message.acks))
                elif isinstance(message, Result):
                    results[message.worker] = message
                    live.phase[message.worker] = "done"
                    live.counters[message.worker] = message.counters
                elif isinstance(message, Failed):
                    failures[message.worker] = message.error
                    live.phase[message.worker] = "failed"
            for index, proc in enumerate(procs):
                if proc.exitcode not in (None, 0) and index not in results:
                    failures.setdefault(index, f"client process exited with {proc.exitcode}")
            if started is None and sum(
                1 for p in live.phase.values() if p in ("ready", "failed")
            ) + len(failures) >= len(procs):
                # Everyone is connected: start together, a moment from now.
                sampler = Sampler(options.urls, options.watch_ports)
                sampler.start()
                scraper = Scraper(options.urls)
                scraper.start()
                if options.profile:
                    profilers = sampler.profile(options.profile, options.duration)
                started = time.time() + 0.5
                started_at = datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
                start_at.value = started
                go.set()
            now = time.time()
            if now - live.last_at >= 1.0:
                total = merge_counters(live.counters.values())
                span = now - live.last_at if live.last_at else 1.0
                live.rates = (
                    (total.presence_sent - live.last.presence_sent) / span,
                    (total.presence_received - live.last.presence_received) / span,
                    (total.ops_acked - live.last.ops_acked) / span,
                )
                live.last = total
                live.last_at = now
                display.update(_table(options, live, started))
                live.presence = Histogram()
                live.acks = Histogram()
    for proc in procs:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    window = (started, started + options.duration) if started is not None else None
    server = sampler.stop(window) if sampler is not None else []
    server_metrics = scraper.stop() if scraper is not None else []
    for _, profiler in profilers:
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()
    if failures and not results:
        raise RuntimeError("every client process failed: " + "; ".join(failures.values()))
    config = reporting.RunConfig(
        shape=options.shape,
        mode=options.mode,
        urls=options.urls,
        rooms=options.rooms,
        members=options.members,
        presence_rate=options.presence_rate,
        op_rate=options.op_rate,
        duration=options.duration,
        processes=options.processes,
        compression=options.compression,
        churn_rate=options.churn_rate,
        payload_bytes=options.payload_bytes,
        placement=options.placement,
    )
    outcome = reporting.build(
        results=list(results.values()),
        config=config,
        started_at=started_at,
        measured_seconds=options.duration,
        server=server,
    )
    for error in failures.values():
        outcome[0].errors.append(f"client process failed: {error}")
    outcome[0].profiles.extend(path for path, _ in profilers)
    outcome[0].server_metrics.extend(server_metrics)
    if options.profile and not profilers:
        outcome[0].warnings.append("--profile: py-spy not found or no local server process")
    return outcome


def summary_table(report: reporting.Report, title: str | None = None) -> Table:
    """The end-of-run summary printed to the terminal."""
    table = Table(title=title or f"{report.config.shape} ({report.config.mode})")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    c = report.connections
    table.add_row("connections held / target", f"{c.held_at_end}/{c.target}")
    table.add_row("connect failures / disconnects", f"{c.connect_failures} / {c.disconnects}")
    table.add_row(
        "connect p50 / p99", f"{c.connect_latency.p50_ms} / {c.connect_latency.p99_ms} ms"
    )
    if c.reconnect_latency.count:
        table.add_row(
            "reconnects during the run (resumed / resynced)",
            f"{c.reconnect_latency.count:,} ({c.resumes:,} / {c.resyncs:,})",
        )
        table.add_row("reconnect latency", _latency(c.reconnect_latency))
    p = report.presence
    if p.sent:
        table.add_row("presence publishes/s", f"{p.publishes_per_s:,.0f}")
        table.add_row("presence deliveries/s", f"{p.deliveries_per_s:,.0f}")
        table.add_row("presence delivered", f"{p.delivered_pct:.2f} %")
        table.add_row("presence skipped / duplicates", f"{p.skipped} / {p.duplicates}")
        table.add_row("presence latency", _latency(p.latency))
    o = report.ops
    if o.sent:
        table.add_row("op batches sent / acked / rejected", f"{o.sent} / {o.acked} / {o.rejected}")
        table.add_row("op batches acked/s", f"{o.acked_per_s:,.0f}")
        table.add_row("op deliveries/s", f"{o.deliveries_per_s:,.0f}")
        table.add_row("ops delivered", f"{o.delivered_pct:.2f} %")
        table.add_row("op gaps / duplicates", f"{o.gaps} / {o.duplicates}")
        table.add_row("op latency", _latency(o.latency))
        table.add_row("ack latency", _latency(o.ack_latency))
    table.add_row(
        "generator lag p99 / CPU",
        f"{report.generator_lag.p99_ms} ms / {report.generator_cpu_pct:.0f} % of a core",
    )
    for m in report.server_metrics:
        if m.commits:
            table.add_row(
                f"group commits {m.url}",
                f"{m.commits:,} x {m.batches_per_commit:g} batches, mean {m.commit_mean_ms} ms, "
                f"p99 <= {m.commit_p99_ms_at_most:g} ms",
            )
        if m.fanout_count:
            table.add_row(
                f"publish-to-send (server) {m.url}",
                f"mean {m.fanout_mean_ms} ms, p99 <= {m.fanout_p99_ms_at_most:g} ms",
            )
        if m.slow_consumer_disconnects or m.gap_fills:
            table.add_row(
                f"slow consumers / gap fills {m.url}",
                f"{m.slow_consumer_disconnects} / {m.gap_fills}",
            )
    if report.server:
        table.add_row(
            "server CPU (sum of processes)",
            f"{report.server_cpu_pct:.0f} % of a core, RSS {report.server_rss_mib:.0f} MiB",
        )
    return table


def _latency(s: LatencySummary) -> str:
    return f"p50 {s.p50_ms} p90 {s.p90_ms} p99 {s.p99_ms} p99.9 {s.p999_ms} max {s.max_ms} ms"


def print_report(report: reporting.Report, console: Console) -> None:
    console.print(summary_table(report))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    for error in report.errors[:10]:
        console.print(f"[red]error:[/red] {error}")
