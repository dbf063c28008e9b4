"""Blendtune on one Redis and on a Redis Cluster, same shape, same machine, in one run.

    python -m bench.cluster --shape small-rooms
    python -m bench.cluster --shape small-rooms --presence-rate 4 --op-rate 0.5 --duration 20

Starts a redis-server of its own and a Redis Cluster of its own (three masters and three
replicas on loopback ports, as tests/cluster does), a fresh database, and three ``blendtune
serve`` processes on each; runs the same load-tester shape against both, one after the other,
and prints the figures side by side with the ratio cluster / one Redis. Redis CPU is the sum
over every redis-server of the run (the cluster's replicas included: they replay their
master's traffic).

On one 2-core machine the cluster cannot be faster than one Redis (its shards share the
cores that the single Redis has to itself, and the processes and the load generator share
them too): the run shows what sharded pub/sub costs and that every figure holds, and the
per-shard load it measures is what docs/operations.md scales from.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

import msgspec
from rich.console import Console
from rich.table import Table

from bench import servers
from bench.compare import add_run_arguments, figures, run_shape
from loadtest import seed
from loadtest.report import Report
from loadtest.shapes import SHAPES
from tests.cluster.support import LocalCluster


@dataclass
class Setup:
    label: str
    redis_url: str
    redis_ports: list[int]


def ops_figures(r: Report) -> dict[str, float]:
    o = r.ops
    return {
        "acked batches/s": o.acked_per_s,
        "ack p50 ms": o.ack_latency.p50_ms,
        "ack p99 ms": o.ack_latency.p99_ms,
        "op delivery p99 ms": o.latency.p99_ms,
        "gaps": o.gaps,
        "duplicates": o.duplicates,
    }


def table(title: str, setups: list[Setup], results: list[Report]) -> Table:
    out = Table(title=title)
    out.add_column("figure", style="bold")
    for setup in setups:
        out.add_column(setup.label, justify="right")
    out.add_column("cluster / one Redis", justify="right")
    rows = []
    for setup, report in zip(setups, results, strict=True):
        row = figures(report, set(setup.redis_ports))
        if report.ops.sent:
            row |= ops_figures(report)
        rows.append(row)
    for name in rows[0]:
        cells = [f"{row[name]:,.2f}".rstrip("0").rstrip(".") for row in rows]
        base, mine = rows[0][name], rows[-1][name]
        out.add_row(name, *cells, f"{mine / base:.2f}x" if base else "-")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, server_processes=3)
    args = parser.parse_args(argv)
    shape = SHAPES[args.shape]
    rooms = args.rooms or shape.rooms
    members = args.members or shape.members
    presence = args.presence_rate if args.presence_rate is not None else shape.presence_rate
    ops = args.op_rate if args.op_rate is not None else shape.op_rate
    out = Console() if sys.stdout.isatty() else Console(width=150)
    err = Console(stderr=True)
    out.print(
        f"[bold]{args.shape}[/bold]: {rooms} rooms x {members} members, presence {presence:g} "
        f"Hz/member, ops {ops:g} Hz/member, {args.duration:g} s per run, "
        f"{args.server_processes} server processes on each Redis, {args.processes} client "
        "processes"
    )
    env = servers.blendtune_env(members)
    cluster = LocalCluster()
    reports: list[Report] = []
    with servers.backends() as on:
        try:
            asyncio.run(cluster.start())
            setups = [
                Setup("one Redis", on.redis_url, [on.redis_port]),
                Setup("cluster, 3 shards", cluster.url, [n.port for n in cluster.nodes]),
            ]
            seeded = asyncio.run(seed.seed(on.database_url, "loadtest", rooms, members))
            for setup in setups:
                err.print(f"starting {args.server_processes} x Blendtune on {setup.label} ...")
                redis = servers.Backends(setup.redis_url, setup.redis_ports[0], on.database_url)
                target = servers.start("blendtune", args.server_processes, redis, env)
                try:
                    if args.warmup > 0:
                        err.print(f"{setup.label}: warm-up {args.warmup:g} s")
                        run_shape(target, args, seeded, presence, ops, args.warmup, [])
                    err.print(f"{setup.label}: {args.duration:g} s")
                    reports.append(
                        run_shape(
                            target, args, seeded, presence, ops, args.duration, setup.redis_ports
                        )
                    )
                finally:
                    servers.stop(target.procs)
        finally:
            cluster.stop()
    out.print(table(f"{args.shape}: one Redis and a Redis Cluster", setups, reports))
    if args.json:
        with open(args.json, "wb") as f:
            named = {s.label: r for s, r in zip(setups, reports, strict=True)}
            f.write(msgspec.json.format(msgspec.json.encode(named), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
