"""Blendtune against the two baselines, same shape, same machine, back to back.

    python -m bench.compare --shape small-rooms
    python -m bench.compare --shape large-rooms --duration 15
    python -m bench.compare --shape small-rooms --sweep 2,4,6,8,10
    python -m bench.compare --shape ops --op-rate 2

Starts a redis-server of its own, a fresh database, and two processes of each server on that
one Redis: Blendtune (``blendtune serve`` with the load-test room kind), the bare ASGI
broadcast (``bench.bare_broadcast``) and Litestar's ChannelsPlugin (``bench.channels_baseline``).
Each gets the same load-tester run (presence only: the baselines have no ops; Blendtune in
its own protocol, the baselines in the ``simple`` wire format), with a short warm-up first.
Prints side-by-side figures and the ratios; ``--sweep`` runs each server at several presence
rates and reports the highest publish rate each sustains with p99 <= --p99-ms and every
update delivered (or coalesced, for Blendtune).

The machine is shared and noisy: read the ratios, and run twice before believing a number.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import sys
from collections.abc import Container
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from bench import servers
from loadtest import runner, seed
from loadtest.report import Report
from loadtest.shapes import SHAPES

SERVERS = ("blendtune", "bare", "channels")
# Not run by default: the write-coalescing experiment (bench/bare_broadcast.py).
EXPERIMENTS = ("bare-batched",)
LABELS = {
    "blendtune": "Blendtune",
    "bare": "bare ASGI",
    "channels": "ChannelsPlugin",
    "bare-batched": "bare, batched writes",
}
BASELINES = {
    "bare": ("bench.bare_broadcast", ()),
    "channels": ("bench.channels_baseline", ()),
    "bare-batched": ("bench.bare_broadcast", ("--batch-writes",)),
}


@dataclass
class Target:
    name: str
    urls: list[str]
    mode: str


def run_shape(
    target: Target,
    args: argparse.Namespace,
    seeded: seed.Seeded | None,
    presence_rate: float,
    op_rate: float,
    duration: float,
    watch: list[int],
) -> Report:
    shape = SHAPES[args.shape]
    rooms = args.rooms or shape.rooms
    members = args.members or shape.members
    options = runner.RunOptions(
        urls=target.urls,
        shape=args.shape,
        mode=target.mode,
        rooms=rooms,
        members=members,
        presence_rate=presence_rate,
        op_rate=op_rate if target.mode == "blendtune" else 0.0,
        duration=duration,
        processes=args.processes,
        watch_ports=watch,
        compression=args.compression,
        placement=args.placement,
    )
    if target.mode == "blendtune":
        assert seeded is not None
        options.room_ids = seeded.rooms[:rooms]
        options.tokens = seeded.tokens[: rooms * members]
    console = Console(stderr=True) if args.verbose else Console(file=io.StringIO())
    report, _ = runner.run(options, console)
    return report


def figures(r: Report, redis_ports: Container[int]) -> dict[str, float]:
    p = r.presence
    app_cpu = sum(x.cpu_mean_pct for x in r.server if x.port not in redis_ports)
    redis_cpu = sum(x.cpu_mean_pct for x in r.server if x.port in redis_ports)
    app_rss = sum(x.rss_max_mib for x in r.server if x.port not in redis_ports)
    # CPU percent is CPU milliseconds per 10 ms; per 1000 deliveries:
    cpu_per_k = app_cpu * 10 * 1000 / p.deliveries_per_s if p.deliveries_per_s else 0.0
    return {
        "connections": r.connections.held_at_end,
        "publishes/s": p.publishes_per_s,
        "deliveries/s": p.deliveries_per_s,
        "delivered %": p.delivered_pct,
        "coalesced": p.skipped,
        "p50 ms": p.latency.p50_ms,
        "p90 ms": p.latency.p90_ms,
        "p99 ms": p.latency.p99_ms,
        "p99.9 ms": p.latency.p999_ms,
        "max ms": p.latency.max_ms,
        "server CPU % (sum)": round(app_cpu, 1),
        "server CPU ms / 1k deliveries": round(cpu_per_k, 2),
        "Redis CPU %": round(redis_cpu, 1),
        "server RSS MiB (sum)": round(app_rss, 1),
        "generator lag p99 ms": r.generator_lag.p99_ms,
        "generator CPU %": r.generator_cpu_pct,
    }


def side_by_side(title: str, results: dict[str, Report], redis_port: int) -> Table:
    table = Table(title=title)
    table.add_column("figure", style="bold")
    for name in results:
        table.add_column(LABELS[name], justify="right")
    others = [n for n in results if n != "blendtune"]
    if "blendtune" in results:
        for name in others:
            table.add_column(f"Blendtune / {LABELS[name]}", justify="right")
    rows = {name: figures(r, {redis_port}) for name, r in results.items()}
    for figure in next(iter(rows.values())):
        cells = [f"{rows[name][figure]:,.2f}".rstrip("0").rstrip(".") for name in results]
        if "blendtune" in results:
            mine = rows["blendtune"][figure]
            for name in others:
                theirs = rows[name][figure]
                cells.append(f"{mine / theirs:.2f}x" if theirs else "-")
        table.add_row(figure, *cells)
    return table


def sustained(
    points: list[tuple[float, Report]], p99_ms: float, min_delivered: float
) -> tuple[float, float, float, float]:
    """Highest publishes/s among the points that met the bar, with its p99, deliveries/s and
    the percentage of updates coalesced away there."""
    best = (0.0, 0.0, 0.0, 0.0)
    for _, r in points:
        p = r.presence
        # Coalesced presence counts as delivered: the newest state did arrive.
        delivered = 100.0 * (p.received + p.skipped) / p.expected if p.expected else 100.0
        ok = p.latency.p99_ms <= p99_ms and delivered >= min_delivered
        ok = ok and r.connections.held_at_end == r.connections.target
        if ok and p.publishes_per_s > best[0]:
            coalesced = 100.0 * p.skipped / p.expected if p.expected else 0.0
            best = (p.publishes_per_s, p.latency.p99_ms, p.deliveries_per_s, coalesced)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small-rooms")
    parser.add_argument("--rooms", type=int)
    parser.add_argument("--members", type=int)
    parser.add_argument("--presence-rate", type=float, help="per member (default: the shape's)")
    parser.add_argument("--op-rate", type=float, help="Blendtune only (default: the shape's)")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds; 0 to skip")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--server-processes", type=int, default=2)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--sweep", help="comma-separated presence rates per member")
    parser.add_argument("--p99-ms", type=float, default=30.0, help="latency bar for --sweep")
    parser.add_argument("--min-delivered", type=float, default=99.9, help="percent, --sweep")
    parser.add_argument("--compression", action="store_true")
    parser.add_argument(
        "--placement",
        choices=["spread", "room"],
        default="spread",
        help="spread: each room on every server process; room: each room on one",
    )
    parser.add_argument("--json", help="write every run's report here")
    parser.add_argument("--verbose", action="store_true", help="show live progress")
    args = parser.parse_args(argv)
    shape = SHAPES[args.shape]
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if args.shape == "ops" or (args.op_rate or 0) > 0:
        names = ["blendtune"]  # the baselines have no ops
    unknown = set(names) - set(SERVERS) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    presence_rate = args.presence_rate if args.presence_rate is not None else shape.presence_rate
    op_rate = args.op_rate if args.op_rate is not None else shape.op_rate
    if names != ["blendtune"]:
        op_rate = 0.0  # compare like with like: presence only
    rates = [float(x) for x in args.sweep.split(",")] if args.sweep else [presence_rate]
    rooms = args.rooms or shape.rooms
    members = args.members or shape.members
    out = Console() if sys.stdout.isatty() else Console(width=150)
    err = Console(stderr=True)
    out.print(
        f"[bold]{args.shape}[/bold]: {rooms} rooms x {members} members, presence "
        f"{', '.join(f'{r:g}' for r in rates)} Hz/member"
        + (f", ops {op_rate:g} Hz/member" if op_rate else "")
        + f", {args.duration:g} s per run, {args.server_processes} server processes each, "
        f"{args.processes} client processes"
    )
    everything: dict[str, dict[str, Report]] = {}
    points: dict[str, list[tuple[float, Report]]] = {n: [] for n in names}
    extra_env = {"BLENDTUNE_WS_ROOM_MAX_MEMBERS": str(max(200, members))}
    with servers.redis_server() as (redis_url, redis_port), servers.database() as database_url:
        seeded = None
        if "blendtune" in names:
            seeded = asyncio.run(seed.seed(database_url, "loadtest", rooms, members))
        started: dict[str, Target] = {}
        procs = []
        try:
            for name in names:
                err.print(f"starting {args.server_processes} x {LABELS[name]} ...")
                if name == "blendtune":
                    urls, ps = servers.start_blendtune(
                        args.server_processes, database_url, redis_url, "bt:", extra_env
                    )
                    started[name] = Target(name, urls, "blendtune")
                else:
                    module, extra = BASELINES[name]
                    urls, ps = servers.start_baseline(
                        module, args.server_processes, redis_url, f"{name}:", extra
                    )
                    started[name] = Target(name, urls, "simple")
                procs.extend(ps)
            given_up: set[str] = set()
            failures: dict[str, int] = {}
            warmed: set[str] = set()  # a warm-up before a server's first run only
            for rate in rates:
                results: dict[str, Report] = {}
                for name in names:
                    if name in given_up:
                        continue
                    target = started[name]
                    run = functools.partial(
                        run_shape, target, args, seeded, rate, op_rate, watch=[redis_port]
                    )
                    if args.warmup > 0 and name not in warmed:
                        err.print(f"{LABELS[name]}: warm-up {args.warmup:g} s")
                        run(duration=args.warmup)
                        warmed.add(name)
                    err.print(f"{LABELS[name]}: {rate:g} Hz/member for {args.duration:g} s")
                    results[name] = run(duration=args.duration)
                    points[name].append((rate, results[name]))
                    if args.sweep:
                        point = [(rate, results[name])]
                        passed = sustained(point, args.p99_ms, args.min_delivered)[0] > 0
                        failures[name] = 0 if passed else failures.get(name, 0) + 1
                        if failures[name] >= 2:
                            # Past its limit (twice: not one noisy run); higher rates would
                            # only take time and CPU.
                            given_up.add(name)
                if not results:
                    break
                everything[f"{rate:g}"] = results
                if rate > 0:  # presence figures (the ops shape has none)
                    title = f"{args.shape} at {rate:g} Hz/member"
                    out.print(side_by_side(title, results, redis_port))
                if op_rate and "blendtune" in results:
                    o = results["blendtune"].ops
                    r = results["blendtune"]
                    out.print(
                        f"Blendtune ops at {op_rate:g} Hz/member: {o.sent:,} sent, "
                        f"{o.acked_per_s:,.0f} acked batches/s, ack p50 "
                        f"{o.ack_latency.p50_ms} ms p99 {o.ack_latency.p99_ms} ms p99.9 "
                        f"{o.ack_latency.p999_ms} ms, delivery p99 {o.latency.p99_ms} ms, "
                        f"gaps {o.gaps}, duplicates {o.duplicates}, rejected {o.rejected}"
                    )
                    out.print(
                        f"  server CPU {r.server_cpu_pct:g} % (with Redis), generator CPU "
                        f"{r.generator_cpu_pct:g} %, generator lag p99 {r.generator_lag.p99_ms} ms"
                    )
                    for m in r.server_metrics:
                        out.print(
                            f"  {m.url}: {m.commits:,} group commits x {m.batches_per_commit:g} "
                            f"batches, mean {m.commit_mean_ms} ms, p99 <= "
                            f"{m.commit_p99_ms_at_most:g} ms, gap fills {m.gap_fills}"
                        )
        finally:
            servers.stop(procs)
    if args.sweep:
        table = Table(
            title=f"highest publish rate with p99 <= {args.p99_ms:g} ms and "
            f">= {args.min_delivered:g} % delivered ({args.shape})"
        )
        table.add_column("server", style="bold")
        table.add_column("publishes/s", justify="right")
        table.add_column("p99 ms there", justify="right")
        table.add_column("deliveries/s there", justify="right")
        table.add_column("coalesced there", justify="right")
        table.add_column("Blendtune / this", justify="right")
        best = {n: sustained(points[n], args.p99_ms, args.min_delivered) for n in names}
        for name in names:
            rate_, p99, deliveries, coalesced = best[name]
            mine = best.get("blendtune", (0.0, 0.0, 0.0, 0.0))[0]
            ratio = f"{mine / rate_:.2f}x" if rate_ and "blendtune" in best else "-"
            table.add_row(
                LABELS[name],
                f"{rate_:,.0f}",
                f"{p99:g}",
                f"{deliveries:,.0f}",
                f"{coalesced:.2f} %",
                ratio,
            )
        out.print(table)
        mine = best.get("blendtune", (0.0, 0.0, 0.0, 0.0))[0]
        # The aims of issue 8, for presence in small rooms.
        for name, aim in (("channels", 2.0), ("bare", 0.7)):
            theirs = best.get(name, (0.0, 0.0, 0.0, 0.0))[0]
            if mine and theirs:
                verdict = "met" if mine / theirs >= aim else "NOT met"
                out.print(
                    f"aim: Blendtune >= {aim:g}x {LABELS[name]}: {mine / theirs:.2f}x, {verdict}"
                )
    if args.json:
        import msgspec

        with open(args.json, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(everything), indent=2))
        out.print(f"reports: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
