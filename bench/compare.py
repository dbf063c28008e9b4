"""Blendtune against the two baselines, same shape, same machine, back to back, at one rate.

    python -m bench.compare --shape small-rooms
    python -m bench.compare --shape large-rooms --duration 15
    python -m bench.compare --shape ops --op-rate 2

Starts a redis-server of its own, a fresh database, and two processes of each server on that
one Redis (``bench.servers``): Blendtune (``blendtune serve`` with the load-test room kind),
the bare ASGI broadcast (``bench.bare_broadcast``) and Litestar's ChannelsPlugin
(``bench.channels_baseline``). Each gets the same load-tester run (presence only: the
baselines have no ops; Blendtune in its own protocol, the baselines in the ``simple`` wire
format), with a short warm-up first. Prints side-by-side figures and the ratios.

How far each server goes (the highest rate it sustains) is ``python -m bench.capacity``.
The machine is shared and noisy: read the ratios, and run twice before believing a number.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from collections.abc import Container

from rich.console import Console
from rich.table import Table

from bench import servers
from bench.servers import KINDS, Target
from loadtest import runner, seed
from loadtest.report import Report
from loadtest.shapes import SHAPES

SERVERS = ("blendtune", *servers.BASELINES)


def add_run_arguments(parser: argparse.ArgumentParser, server_processes: int) -> None:
    """The options every side-by-side benchmark takes (compare, cluster)."""
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small-rooms")
    parser.add_argument("--rooms", type=int)
    parser.add_argument("--members", type=int)
    parser.add_argument("--presence-rate", type=float, help="per member (default: the shape's)")
    parser.add_argument("--op-rate", type=float, help="per member (default: the shape's)")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds; 0 to skip")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--server-processes", type=int, default=server_processes)
    parser.add_argument("--compression", action="store_true")
    parser.add_argument(
        "--placement",
        choices=["spread", "room"],
        default="spread",
        help="spread: each room on every server process; room: each room on one",
    )
    parser.add_argument("--json", help="write every run's report here")
    parser.add_argument("--verbose", action="store_true", help="show live progress")


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
        table.add_column(KINDS[name].label, justify="right")
    others = [n for n in results if n != "blendtune"]
    if "blendtune" in results:
        for name in others:
            table.add_column(f"Blendtune / {KINDS[name].label}", justify="right")
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


def print_ops(out: Console, op_rate: float, r: Report) -> None:
    o = r.ops
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
            f"{m.commit_p99_ms_at_most:g} ms, gap fills {m.gap_fills}, rooms committed "
            + (", ".join(f"{path} {n:,}" for path, n in sorted(m.commit_paths.items())) or "-")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, server_processes=2)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    args = parser.parse_args(argv)
    shape = SHAPES[args.shape]
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if args.shape == "ops" or (args.op_rate or 0) > 0:
        names = ["blendtune"]  # the baselines have no ops
    unknown = set(names) - set(KINDS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    presence_rate = args.presence_rate if args.presence_rate is not None else shape.presence_rate
    op_rate = args.op_rate if args.op_rate is not None else shape.op_rate
    if names != ["blendtune"]:
        op_rate = 0.0  # compare like with like: presence only
    rooms = args.rooms or shape.rooms
    members = args.members or shape.members
    out = Console() if sys.stdout.isatty() else Console(width=150)
    err = Console(stderr=True)
    out.print(
        f"[bold]{args.shape}[/bold]: {rooms} rooms x {members} members, presence "
        f"{presence_rate:g} Hz/member"
        + (f", ops {op_rate:g} Hz/member" if op_rate else "")
        + f", {args.duration:g} s per run, {args.server_processes} server processes each, "
        f"{args.processes} client processes"
    )
    results: dict[str, Report] = {}
    with servers.backends() as on:
        seeded = None
        if "blendtune" in names:
            seeded = asyncio.run(seed.seed(on.database_url, "loadtest", rooms, members))
        started: list[Target] = []
        try:
            for name in names:
                err.print(f"starting {args.server_processes} x {KINDS[name].label} ...")
                env = servers.blendtune_env(members)
                started.append(servers.start(name, args.server_processes, on, env))
            for target in started:
                if args.warmup > 0:
                    err.print(f"{target.label}: warm-up {args.warmup:g} s")
                    run_shape(target, args, seeded, presence_rate, op_rate, args.warmup, [])
                err.print(f"{target.label}: {presence_rate:g} Hz/member for {args.duration:g} s")
                results[target.name] = run_shape(
                    target, args, seeded, presence_rate, op_rate, args.duration, [on.redis_port]
                )
        finally:
            servers.stop([p for target in started for p in target.procs])
    if presence_rate > 0:  # presence figures (the ops shape has none)
        title = f"{args.shape} at {presence_rate:g} Hz/member"
        out.print(side_by_side(title, results, on.redis_port))
    if op_rate and "blendtune" in results:
        print_ops(out, op_rate, results["blendtune"])
    if args.json:
        import msgspec

        with open(args.json, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(results), indent=2))
        out.print(f"reports: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
