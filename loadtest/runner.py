"""The parent process of a run: plans members, starts client processes, shows progress, merges.

Members are spread so that every room has members in several client processes and, by
default, on every server URL (member m of room r goes to process (r*M+m) mod P and to URL
(r+m) mod U): fan-out across server processes and across client processes is exercised.
With placement "room", room r's members all go to URL r mod U instead.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import queue
import subprocess
import time
from collections.abc import Callable
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
from loadtest.worker import (
    Failed,
    Message,
    Progress,
    Reconnected,
    ReconnectPlan,
    Result,
    StepPlan,
    StopPlan,
    WorkerPlan,
    worker_main,
)


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
    # Other local processes to sample (label -> pid), e.g. PostgreSQL backends.
    watch_pids: dict[str, int] = field(default_factory=dict)
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
    started: float | None = None  # the current step's measured window start
    duration: float = 0.0


def _table(options: RunOptions, live: Live_, started: float | None) -> Table:
    total = merge_counters(live.counters.values())
    phases = sorted(set(live.phase.values())) or ["starting"]
    table = Table(title=f"blendtune loadtest: {options.shape} ({options.mode})", min_width=60)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    elapsed = f"{time.time() - started:.0f}/{live.duration:.0f} s" if started else "-"
    table.add_row("phase", ", ".join(phases) + f"  {elapsed}")
    table.add_row(
        "connections held",
        f"{total.connections_held}/{options.rooms * options.members}"
        + (f"  ({total.connect_failures} failed)" if total.connect_failures else ""),
    )
    pub, dlv, ack = live.rates
    table.add_row("presence publishes/s", f"{pub:,.0f}")
    table.add_row("presence deliveries/s", f"{dlv:,.0f}")
    if options.op_rate or ack:
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


class Session:
    """Client processes holding every member's connection across several measured steps.

    ``run`` (one step) is the load tester; ``bench.capacity`` changes the rate from step to
    step over the same connections, so a sweep does not pay for connecting (a join storm, in
    a huge room) at every rate. Use as a context manager: connects on entry, closes on exit.
    """

    def __init__(self, options: RunOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console(stderr=True)
        context = multiprocessing.get_context("spawn")
        self.messages: multiprocessing.Queue[bytes] = context.Queue()
        self.commands: list[multiprocessing.Queue[bytes]] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder = msgspec.msgpack.Decoder(Message)
        self.context = context
        self.live = Live_()
        self.failures: dict[int, str] = {}
        self.sampler: Sampler | None = None
        self.steps = 0
        self.connected_in = 0.0  # seconds connect() took: every member joined (or failed)

    def __enter__(self) -> Session:
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Start the client processes and wait until every member has joined (or failed)."""
        options = self.options
        began = time.time()
        for index, members in enumerate(plan_members(options)):
            plan = WorkerPlan(
                index=index,
                mode=options.mode,
                kind=options.kind,
                members=members,
                payload_bytes=options.payload_bytes,
                compression=options.compression,
                connect_concurrency=options.connect_concurrency,
                reconnect=options.reconnect,
            )
            commands: multiprocessing.Queue[bytes] = self.context.Queue()
            proc = self.context.Process(
                target=worker_main,
                args=(self.encoder.encode(plan), self.messages, commands),
                name=f"loadtest-{index}",
                daemon=True,
            )
            proc.start()
            self.commands.append(commands)
            self.procs.append(proc)
        ready: set[int] = set()

        def everyone_ready() -> bool:
            return len(ready | set(self.failures)) >= len(self.procs)

        def on_progress(message: Progress) -> None:
            if message.phase == "ready":
                ready.add(message.worker)

        with Live(self._table(None), console=self.console, refresh_per_second=4) as display:
            self._pump(display, None, everyone_ready, on_progress, None)
        if len(self.failures) == len(self.procs):
            raise RuntimeError("every client process failed: " + "; ".join(self.failures.values()))
        self.connected_in = time.time() - began
        # Sampled for the whole session; each step reads its own window.
        self.sampler = Sampler(options.urls, options.watch_ports, options.watch_pids)
        self.sampler.start()

    def step(
        self,
        presence_rate: float,
        op_rate: float,
        duration: float,
        *,
        settle: float = 0.0,
        drain: float | None = None,
        churn_rate: float = 0.0,
        profile: str = "",
    ) -> tuple[reporting.Report, reporting.Distributions]:
        """Send at these rates (per member) for ``settle`` + ``duration`` seconds; report the
        measured ``duration`` (what was sent in it and everything that came of it)."""
        options = self.options
        number = self.steps
        self.steps += 1
        alive = [i for i in range(len(self.procs)) if i not in self.failures]
        # First every member the server closed comes back, however long that takes; then
        # the step is timed from a moment every worker can keep.
        reconnected: set[int] = set()

        def on_reconnected(message: Reconnected) -> None:
            if message.step == number:
                reconnected.add(message.worker)

        def all_back() -> bool:
            return len(reconnected | set(self.failures)) >= len(self.procs)

        for i in alive:
            self.commands[i].put(self.encoder.encode(ReconnectPlan(number)))
        with Live(self._table(None), console=self.console, refresh_per_second=4) as display:
            self._pump(display, None, all_back, None, on_reconnected)
        alive = [i for i in alive if i not in self.failures]
        lead = 0.25  # time for the step's command to arrive
        begin = time.time() + lead
        window = (begin + settle, begin + settle + duration)
        plan = StepPlan(
            number=number,
            start=begin,
            settle=settle,
            duration=duration,
            drain=options.drain if drain is None else drain,
            presence_rate=presence_rate,
            op_rate=op_rate,
            churn_rate=churn_rate / max(1, len(alive)),
        )
        scraper = Scraper(options.urls)
        scraper.start()
        profilers: list[tuple[str, subprocess.Popen[bytes]]] = []
        if profile and self.sampler is not None:
            profilers = self.sampler.profile(profile, settle + duration + lead)
        for i in alive:
            self.commands[i].put(self.encoder.encode(plan))
        results: dict[int, Result] = {}
        self.live.started = window[0]
        self.live.duration = duration

        def done() -> bool:
            return len(results) + len([i for i in alive if i in self.failures]) >= len(alive)

        def on_result(message: Result) -> None:
            if message.step == number:
                results[message.worker] = message

        with Live(self._table(window[0]), console=self.console, refresh_per_second=4) as display:
            self._pump(display, on_result, done, None, None)
        server = self.sampler.usage(window) if self.sampler is not None else []
        cpu_busy = self.sampler.cpu_busy(window) if self.sampler is not None else []
        server_metrics = scraper.stop()
        for _, profiler in profilers:
            try:
                profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                profiler.kill()
        if not results:
            raise RuntimeError("every client process failed: " + "; ".join(self.failures.values()))
        config = reporting.RunConfig(
            shape=options.shape,
            mode=options.mode,
            urls=options.urls,
            rooms=options.rooms,
            members=options.members,
            presence_rate=presence_rate,
            op_rate=op_rate,
            duration=duration,
            processes=options.processes,
            compression=options.compression,
            churn_rate=churn_rate,
            payload_bytes=options.payload_bytes,
            placement=options.placement,
        )
        report, dists = reporting.build(
            results=list(results.values()),
            config=config,
            started_at=datetime.fromtimestamp(window[0], UTC).isoformat(timespec="seconds"),
            measured_seconds=duration,
            server=server,
        )
        for index, error in self.failures.items():
            if index in alive:
                report.errors.append(f"client process failed: {error}")
        report.profiles.extend(path for path, _ in profilers)
        report.server_metrics.extend(server_metrics)
        report.cpu_busy = cpu_busy
        if profile and not profilers:
            report.warnings.append("--profile: py-spy not found or no local server process")
        return report, dists

    def wait_quiet(self, below_per_s: float, at_most: float) -> float:
        """Wait (up to ``at_most`` seconds) until the members receive fewer than
        ``below_per_s`` frames a second and no op batch waits for its ack: after an
        overloaded step, the servers' backlog drains before the next step is timed. Returns
        the seconds waited."""
        began = time.time()
        history: dict[int, list[tuple[float, int]]] = {}  # worker -> (time, frames so far)
        pending: dict[int, int] = {}  # worker -> op batches still waiting for their ack
        alive = [i for i in range(len(self.procs)) if i not in self.failures]

        def on_progress(message: Progress) -> None:
            history.setdefault(message.worker, []).append((time.time(), message.frames))
            pending[message.worker] = message.pending_ops

        def quiet() -> bool:
            if time.time() - began >= at_most:
                return True
            rate = 0.0
            for i in alive:
                reports = history.get(i, [])
                if not reports:
                    return False
                t1, f1 = reports[-1]
                # The rate over the last second or so of this worker's reports.
                earlier = [(t, f) for t, f in reports if t <= t1 - 0.9]
                if not earlier:
                    return False
                t0, f0 = earlier[-1]
                rate += (f1 - f0) / (t1 - t0)
            # A server working through a backlog of commits sends little meanwhile: quiet
            # also means every batch sent has its ack.
            return rate < below_per_s and not any(pending.get(i, 0) for i in alive)

        with Live(self._table(None), console=self.console, refresh_per_second=4) as display:
            self._pump(display, None, quiet, on_progress, None)
        return time.time() - began

    def close(self) -> None:
        """Tell the client processes to close their connections and exit."""
        stop = self.encoder.encode(StopPlan())
        for index, commands in enumerate(self.commands):
            if index not in self.failures:
                commands.put(stop)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None

    def _pump(
        self,
        display: Live,
        on_result: Callable[[Result], None] | None,
        finished: Callable[[], bool],
        on_progress: Callable[[Progress], None] | None,
        on_reconnected: Callable[[Reconnected], None] | None,
    ) -> None:
        """Read the client processes' messages until ``finished()``; keep the display live."""
        live = self.live
        while not finished():
            try:
                raw = self.messages.get(timeout=0.25)
            except queue.Empty:
                raw = None
            if raw is not None:
                message = self.decoder.decode(raw)
                if isinstance(message, Progress):
                    live.phase[message.worker] = message.phase
                    live.counters[message.worker] = message.counters
                    live.presence.merge(Histogram.from_sparse(message.presence))
                    live.acks.merge(Histogram.from_sparse(message.acks))
                    if on_progress is not None:
                        on_progress(message)
                elif isinstance(message, Result):
                    live.phase[message.worker] = "done"
                    live.counters[message.worker] = message.counters
                    if on_result is not None:
                        on_result(message)
                elif isinstance(message, Failed):
                    self.failures[message.worker] = message.error
                    live.phase[message.worker] = "failed"
                elif isinstance(message, Reconnected) and on_reconnected is not None:
                    on_reconnected(message)
            for index, proc in enumerate(self.procs):
                if proc.exitcode not in (None, 0):
                    self.failures.setdefault(index, f"client process exited with {proc.exitcode}")
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
                display.update(self._table(live.started))
                live.presence = Histogram()
                live.acks = Histogram()

    def _table(self, started: float | None) -> Table:
        return _table(self.options, self.live, started)


def run(
    options: RunOptions, console: Console | None = None
) -> tuple[reporting.Report, reporting.Distributions]:
    """One run: connect, one measured step at the options' rates, close."""
    with Session(options, console) as session:
        return session.step(
            options.presence_rate,
            options.op_rate,
            options.duration,
            churn_rate=options.churn_rate,
            profile=options.profile,
        )


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
