"""The run report: merged figures as msgspec Structs (written as JSON) and the PNG plot."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from loadtest.resources import ProcessUsage
from loadtest.scrape import ServerMetrics
from loadtest.stats import (
    Counters,
    Histogram,
    LatencySummary,
    Timeline,
    merge_counters,
    percentage,
    rate,
    summarize,
)
from loadtest.worker import Result


class Machine(msgspec.Struct, frozen=True):
    cpus: int
    cpu_model: str
    memory_gib: float
    python: str
    platform: str


class RunConfig(msgspec.Struct, frozen=True, kw_only=True):
    shape: str
    mode: str
    urls: list[str]
    rooms: int
    members: int
    presence_rate: float
    op_rate: float
    duration: float
    processes: int
    compression: bool
    churn_rate: float
    payload_bytes: int
    placement: str = "spread"


class Connections(msgspec.Struct, frozen=True, kw_only=True):
    target: int
    opened: int
    held_at_end: int
    connect_failures: int
    disconnects: int
    resumes: int  # reconnects (churn, or after a server close) the server resumed
    resyncs: int  # reconnects answered with a snapshot (history no longer kept)
    close_codes: dict[str, int]
    connect_latency: LatencySummary  # TCP + WebSocket handshake + join, until the welcome
    reconnect_latency: LatencySummary  # the same, for connects made during the run (churn)


class PresenceFigures(msgspec.Struct, frozen=True, kw_only=True):
    sent: int
    publishes_per_s: float
    received: int
    deliveries_per_s: float
    expected: int
    delivered_pct: float
    skipped: int  # per-sender counter jumps: coalesced by the server (allowed) or lost
    duplicates: int
    latency: LatencySummary


class OpFigures(msgspec.Struct, frozen=True, kw_only=True):
    sent: int
    acked: int
    rejected: int
    acked_per_s: float
    received: int
    deliveries_per_s: float
    expected: int
    delivered_pct: float
    gaps: int
    duplicates: int
    latency: LatencySummary
    ack_latency: LatencySummary


class Second(msgspec.Struct, frozen=True, kw_only=True):
    t: int
    presence_sent: int
    presence_received: int
    ops_acked: int
    presence_p50_ms: float
    presence_p99_ms: float
    presence_max_ms: float
    ops_p99_ms: float
    ack_p50_ms: float
    ack_p99_ms: float


class Report(msgspec.Struct, kw_only=True):
    version: int = 1
    started_at: str
    measured_seconds: float
    machine: Machine
    config: RunConfig
    connections: Connections
    presence: PresenceFigures
    ops: OpFigures
    generator_lag: LatencySummary  # how late sends left against the timetable
    generator_cpu_pct: float  # the client processes' CPU during the window (100 = one core)
    server: list[ProcessUsage]
    server_cpu_pct: float  # sum of the means over server processes (100 = one core)
    server_rss_mib: float
    timeline: list[Second]
    warnings: list[str]
    errors: list[str]
    profiles: list[str] = []  # py-spy outputs (--profile)
    server_metrics: list[ServerMetrics] = []  # from each server's /metrics, over the window
    # Percent busy of each CPU of the machine over the window, whoever used it (all of the
    # load tester's processes, the servers, and anything else running meanwhile).
    cpu_busy: list[float] = []


@dataclass
class Distributions:
    """Merged whole-run histograms (the JSON carries their summaries only)."""

    presence: Histogram
    ops: Histogram
    acks: Histogram


def machine() -> Machine:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        memory = psutil.virtual_memory().total / 2**30
    except Exception:  # pragma: no cover
        memory = 0.0
    return Machine(
        cpus=os.cpu_count() or 0,
        cpu_model=model,
        memory_gib=round(memory, 1),
        python=platform.python_version(),
        platform=platform.platform(),
    )


def _merge(parts: Sequence[Histogram]) -> Histogram:
    total = Histogram()
    for part in parts:
        total.merge(part)
    return total


def _merge_timelines(parts: Sequence[Timeline]) -> Timeline:
    total = Timeline()
    for part in parts:
        total.merge(part)
    return total


def _sum_per_s(parts: Sequence[dict[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for part in parts:
        for k, v in part.items():
            total[int(k)] = total.get(int(k), 0) + v
    return total


def build(
    *,
    results: Sequence[Result],
    config: RunConfig,
    started_at: str,
    measured_seconds: float,
    server: list[ProcessUsage],
) -> tuple[Report, Distributions]:
    """Merge the workers' results into the report (and the distributions for the plot)."""
    counters: Counters = merge_counters(r.counters for r in results)
    hist = {
        name: _merge([Histogram.from_sparse(getattr(r, name)) for r in results])
        for name in ("presence", "ops", "acks", "connect", "reconnect", "lag")
    }
    timelines = {
        name: _merge_timelines([Timeline.from_sparse(getattr(r, name)) for r in results])
        for name in ("presence_timeline", "ops_timeline", "acks_timeline")
    }
    sent_s = _sum_per_s([r.presence_sent_per_s for r in results])
    received_s = _sum_per_s([r.presence_received_per_s for r in results])
    acked_s = _sum_per_s([r.ops_acked_per_s for r in results])
    close_codes: dict[str, int] = {}
    for r in results:
        for code, n in r.close_codes.items():
            close_codes[code] = close_codes.get(code, 0) + n
    errors: list[str] = []
    for r in results:
        errors.extend(e for e in r.errors if e not in errors)

    seconds = sorted(
        {*sent_s, *received_s, *acked_s, *timelines["presence_timeline"].seconds}
        | set(timelines["acks_timeline"].seconds)
    )
    empty = Histogram()
    timeline = []
    for t in seconds:
        if t < 0 or t >= measured_seconds:
            continue  # the drain after the window: in the totals, not in the per-second plot
        p = timelines["presence_timeline"].seconds.get(t, empty)
        o = timelines["ops_timeline"].seconds.get(t, empty)
        a = timelines["acks_timeline"].seconds.get(t, empty)
        timeline.append(
            Second(
                t=t,
                presence_sent=sent_s.get(t, 0),
                presence_received=received_s.get(t, 0),
                ops_acked=acked_s.get(t, 0),
                presence_p50_ms=round(p.percentile(50) * 1e3, 3),
                presence_p99_ms=round(p.percentile(99) * 1e3, 3),
                presence_max_ms=round(p.max_us / 1e3, 3),
                ops_p99_ms=round(o.percentile(99) * 1e3, 3),
                ack_p50_ms=round(a.percentile(50) * 1e3, 3),
                ack_p99_ms=round(a.percentile(99) * 1e3, 3),
            )
        )

    c = counters
    target = config.rooms * config.members
    window = measured_seconds
    warnings = []
    lag = summarize(hist["lag"])
    if lag.p99_ms > 10:
        warnings.append(
            f"the load generator ran late (p99 {lag.p99_ms:.1f} ms behind its timetable): "
            "latencies include its own lag; use more --processes or a lower rate"
        )
    if c.connect_failures:
        warnings.append(f"{c.connect_failures} connection attempts failed")
    if not server:
        warnings.append("no server process found on this machine: CPU and memory not reported")
    report = Report(
        started_at=started_at,
        measured_seconds=round(window, 3),
        machine=machine(),
        config=config,
        connections=Connections(
            target=target,
            opened=c.connections_opened,
            held_at_end=sum(r.held_at_end for r in results),
            connect_failures=c.connect_failures,
            disconnects=c.disconnects,
            resumes=c.resumes,
            resyncs=c.resyncs,
            close_codes=close_codes,
            connect_latency=summarize(hist["connect"]),
            reconnect_latency=summarize(hist["reconnect"]),
        ),
        presence=PresenceFigures(
            sent=c.presence_sent,
            publishes_per_s=round(rate(c.presence_sent, window), 1),
            received=c.presence_received,
            deliveries_per_s=round(rate(c.presence_received, window), 1),
            expected=c.expected_presence_deliveries,
            delivered_pct=round(percentage(c.presence_received, c.expected_presence_deliveries), 3),
            skipped=c.presence_skipped,
            duplicates=c.presence_duplicates,
            latency=summarize(hist["presence"]),
        ),
        ops=OpFigures(
            sent=c.ops_sent,
            acked=c.ops_acked,
            rejected=c.ops_rejected,
            acked_per_s=round(rate(c.ops_acked, window), 1),
            received=c.ops_received,
            deliveries_per_s=round(rate(c.ops_received, window), 1),
            expected=c.expected_op_deliveries,
            delivered_pct=round(percentage(c.ops_received, c.expected_op_deliveries), 3),
            gaps=c.ops_gaps,
            duplicates=c.ops_duplicates,
            latency=summarize(hist["ops"]),
            ack_latency=summarize(hist["acks"]),
        ),
        generator_lag=lag,
        generator_cpu_pct=round(
            100 * sum(r.cpu_seconds for r in results) / window if window else 0.0, 1
        ),
        server=server,
        server_cpu_pct=round(sum(p.cpu_mean_pct for p in server), 1),
        server_rss_mib=round(sum(p.rss_max_mib for p in server), 1),
        timeline=timeline,
        warnings=warnings,
        errors=errors[:50],
    )
    return report, Distributions(presence=hist["presence"], ops=hist["ops"], acks=hist["acks"])


def write_json(report: Report, path: str) -> None:
    with open(path, "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(report), indent=2))
        f.write(b"\n")


def plot(report: Report, dists: Distributions, path: str) -> None:
    """Latency over time, throughput over time, and the latency distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    fig, (ax_time, ax_rate, ax_dist) = plt.subplots(3, 1, figsize=(10, 11))
    cfg = report.config
    fig.suptitle(
        f"blendtune loadtest: {cfg.shape} ({cfg.mode}), {cfg.rooms} rooms x {cfg.members}, "
        f"{cfg.processes} client processes, {len(cfg.urls)} server URL(s)"
    )
    t = [s.t for s in report.timeline]

    def series(values: list[float]) -> list[float]:
        return [v if v > 0 else float("nan") for v in values]

    if report.presence.sent:
        ax_time.plot(t, series([s.presence_p50_ms for s in report.timeline]), label="presence p50")
        ax_time.plot(t, series([s.presence_p99_ms for s in report.timeline]), label="presence p99")
        ax_time.plot(
            t, series([s.presence_max_ms for s in report.timeline]), label="presence max", lw=0.8
        )
    if report.ops.sent:
        ax_time.plot(t, series([s.ops_p99_ms for s in report.timeline]), label="op p99")
        ax_time.plot(t, series([s.ack_p50_ms for s in report.timeline]), label="ack p50")
        ax_time.plot(t, series([s.ack_p99_ms for s in report.timeline]), label="ack p99")
    ax_time.set_yscale("log")
    ax_time.set_xlabel("seconds since start")
    ax_time.set_ylabel("latency (ms)")
    ax_time.set_title("publish-to-receive latency per second")
    ax_time.grid(True, which="both", alpha=0.3)
    if ax_time.get_legend_handles_labels()[0]:
        ax_time.legend(loc="upper left", fontsize="small")

    ax_rate.plot(t, [s.presence_sent for s in report.timeline], label="presence publishes/s")
    ax_rate.plot(t, [s.presence_received for s in report.timeline], label="presence deliveries/s")
    if report.ops.sent:
        ax_rate.plot(t, [s.ops_acked for s in report.timeline], label="op batches acked/s")
    ax_rate.set_yscale("log")
    ax_rate.set_xlabel("seconds since start")
    ax_rate.set_ylabel("per second")
    ax_rate.set_title("throughput")
    ax_rate.grid(True, alpha=0.3)
    if ax_rate.get_legend_handles_labels()[0]:
        ax_rate.legend(loc="upper left", fontsize="small")

    presence, ops, acks = dists.presence, dists.ops, dists.acks
    quantiles = 100.0 - 100.0 / np.logspace(0, 5, 200)  # 0 .. 99.999
    for name, h in (("presence", presence), ("op delivery", ops), ("ack", acks)):
        if h.total:
            values = [h.percentile(float(q)) * 1e3 for q in quantiles]
            ax_dist.plot(1.0 / (1.0 - quantiles / 100.0), values, label=name)
    ax_dist.set_xscale("log")
    ax_dist.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax_dist.set_xticks(ticks)
    ax_dist.set_xticklabels(["0", "50", "90", "99", "99.9", "99.99", "99.999"])
    ax_dist.set_xlabel("percentile")
    ax_dist.set_ylabel("latency (ms)")
    ax_dist.set_title("latency distribution (whole run)")
    ax_dist.grid(True, which="both", alpha=0.3)
    if ax_dist.get_legend_handles_labels()[0]:
        ax_dist.legend(loc="upper left", fontsize="small")

    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    for ax in (ax_time, ax_rate, ax_dist):
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
