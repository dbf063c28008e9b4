"""``blendtune loadtest`` and ``blendtune loadtest-seed``."""

from __future__ import annotations

import asyncio
import sys

import click
from rich.console import Console

from loadtest import seed
from loadtest.shapes import SHAPES


@click.command("loadtest")
@click.option(
    "--url",
    "urls",
    multiple=True,
    default=["http://127.0.0.1:8000"],
    show_default=True,
    help="Server base URL; repeat to spread members over several processes.",
)
@click.option(
    "--shape",
    type=click.Choice(sorted(SHAPES)),
    default="small-rooms",
    show_default=True,
    help="Preset (see docs/performance.md); the options below override it.",
)
@click.option("--rooms", type=click.IntRange(min=1), help="Rooms.")
@click.option("--members", type=click.IntRange(min=1), help="Members per room.")
@click.option("--presence-rate", type=click.FloatRange(min=0), help="Presence updates/s/member.")
@click.option("--op-rate", type=click.FloatRange(min=0), help="Op batches/s/member.")
@click.option("--duration", type=click.FloatRange(min=0.5), help="Seconds of sending.")
@click.option(
    "--messages",
    type=click.IntRange(min=1),
    help="Send about this many messages in total instead of running for --duration.",
)
@click.option("--churn-rate", type=click.FloatRange(min=0), help="Reconnects per second.")
@click.option("--processes", type=click.IntRange(min=1), help="Client processes [shape: 2].")
@click.option(
    "--mode",
    type=click.Choice(["blendtune", "simple"]),
    default="blendtune",
    show_default=True,
    help="blendtune: the room protocol (docs/protocol.md); simple: the baselines' wire format.",
)
@click.option(
    "--placement",
    type=click.Choice(["spread", "room"]),
    default="spread",
    show_default=True,
    help="spread: every room has members on every --url; room: each room's members on one "
    "URL (as a load balancer hashing on the room id would place them).",
)
@click.option(
    "--reconnect/--no-reconnect",
    default=True,
    show_default=True,
    help="Reconnect members the server closes during the run, resuming from their last seq.",
)
@click.option(
    "--compression/--no-compression",
    default=False,
    show_default=True,
    help="Offer permessage-deflate, as browsers do.",
)
@click.option(
    "--payload-bytes",
    type=click.IntRange(min=64),
    default=178,
    show_default=True,
    help="Presence frames are padded to this size.",
)
@click.option(
    "--seed",
    "seed_file",
    type=click.Path(dir_okay=False),
    help="Users and rooms written by `blendtune loadtest-seed` (default: seed them now).",
)
@click.option("--kind", default="loadtest", show_default=True, help="Room kind (blendtune mode).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="JSON report.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="PNG plot.")
@click.option(
    "--profile",
    "profile_prefix",
    help="Profile the local server processes with py-spy while the run lasts; raw stacks "
    "go to PREFIX-<port>-<pid>.txt and a summary is printed.",
)
@click.option(
    "--watch-port",
    "watch_ports",
    multiple=True,
    type=int,
    help="Also report CPU/memory of the local process listening here (e.g. Redis).",
)
def loadtest(
    urls: tuple[str, ...],
    shape: str,
    rooms: int | None,
    members: int | None,
    presence_rate: float | None,
    op_rate: float | None,
    duration: float | None,
    messages: int | None,
    churn_rate: float | None,
    processes: int | None,
    mode: str,
    placement: str,
    reconnect: bool,
    compression: bool,
    payload_bytes: int,
    seed_file: str | None,
    kind: str,
    report_path: str | None,
    plot_path: str | None,
    watch_ports: tuple[int, ...],
    profile_prefix: str | None,
) -> None:
    """Simulate many concurrent rooms against one or several server processes.

    Members send presence updates and op batches on a fixed open-loop timetable; latency is
    measured from the scheduled send time. Prints a summary and optionally writes a JSON
    report and a PNG plot. The servers need the load-test room kind
    (BLENDTUNE_ROOM_KINDS=loadtest.kind:LoadTestKind). See docs/performance.md.
    """
    try:
        from loadtest import report as reporting
        from loadtest import runner
    except ImportError as exc:
        raise click.ClickException(
            f"the load tester needs the 'loadtest' extra ({exc.name} is missing):"
            " pip install 'blendtune[loadtest]'"
        ) from exc

    preset = SHAPES[shape]
    options = runner.RunOptions(
        urls=[u.rstrip("/") for u in urls],
        shape=shape,
        mode=mode,
        rooms=rooms if rooms is not None else preset.rooms,
        members=members if members is not None else preset.members,
        presence_rate=presence_rate if presence_rate is not None else preset.presence_rate,
        op_rate=op_rate if op_rate is not None else preset.op_rate,
        duration=duration if duration is not None else preset.duration,
        processes=processes if processes is not None else preset.processes,
        compression=compression,
        churn_rate=churn_rate if churn_rate is not None else preset.churn_rate,
        payload_bytes=payload_bytes,
        placement=placement,
        reconnect=reconnect,
        watch_ports=list(watch_ports),
        profile=profile_prefix or "",
    )
    if mode == "simple" and options.op_rate:
        raise click.UsageError("the simple mode has presence only: add --op-rate 0")
    if messages is not None:
        options.duration = runner.duration_for_messages(messages, options)
    console = Console(stderr=True)
    if mode == "blendtune":
        needed = options.rooms * options.members
        if seed_file:
            seeded = seed.read(seed_file)
            if seeded.kind != kind:
                raise click.UsageError(f"{seed_file} seeds {seeded.kind!r} rooms, not {kind!r}")
        else:
            console.print(f"seeding {options.rooms} rooms and {needed} users ...")
            seeded = _seed(kind, options.rooms, options.members)
        if len(seeded.rooms) < options.rooms or len(seeded.tokens) < needed:
            raise click.UsageError(
                f"the seed has {len(seeded.rooms)} rooms and {len(seeded.tokens)} users; "
                f"this run needs {options.rooms} and {needed}"
            )
        options.room_ids = seeded.rooms[: options.rooms]
        options.tokens = seeded.tokens[:needed]
        options.kind = kind
    report, dists = runner.run(options, console)
    runner.print_report(report, Console())
    if report_path:
        reporting.write_json(report, report_path)
        console.print(f"report: {report_path}")
    if plot_path:
        reporting.plot(report, dists, plot_path)
        console.print(f"plot: {plot_path}")
    for path in report.profiles:
        _print_profile(path, console)
    if report.connections.opened == 0:
        sys.exit(1)


def _print_profile(path: str, console: Console) -> None:
    from loadtest import flame

    try:
        with open(path) as f:
            total, self_time, inclusive = flame.summarise(f.readlines(), "rooms/")
    except OSError:
        console.print(f"profile {path}: not written")
        return
    console.print(f"profile {path}: {total} samples; top self time:")
    for frame, count in self_time.most_common(12):
        console.print(f"  {100 * count / max(total, 1):5.1f} %  {frame}")
    console.print("  rooms/ inclusive:")
    for frame, count in inclusive.most_common(8):
        console.print(f"  {100 * count / max(total, 1):5.1f} %  {frame}")


def _seed(kind: str, rooms: int, members: int) -> seed.Seeded:
    return asyncio.run(seed.seed_with_settings(kind, rooms, members))


@click.command("loadtest-seed")
@click.option("--rooms", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--members", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--kind", default="loadtest", show_default=True, help="Room kind to create.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="loadtest-seed.json",
    show_default=True,
    help="Where to write room ids and session tokens.",
)
@click.option("--clean", is_flag=True, help="Delete every load-test user and room instead.")
def loadtest_seed(rooms: int, members: int, kind: str, out: str, clean: bool) -> None:
    """Create load-test users (with sessions) and rooms directly in the database.

    Uses the server's settings (BLENDTUNE_DATABASE_URL, or the embedded PostgreSQL under
    BLENDTUNE_DATA_DIR). Users are named loadtest-*@loadtest.invalid and cannot log in;
    --clean removes them and their rooms.
    """
    if clean:
        users, deleted_rooms = asyncio.run(seed.clean_with_settings())
        click.echo(f"deleted {users} load-test users and {deleted_rooms} rooms")
        return
    seeded = asyncio.run(seed.seed_with_settings(kind, rooms, members))
    seed.write(seeded, out)
    click.echo(f"seeded {len(seeded.rooms)} {kind} rooms and {len(seeded.tokens)} users: {out}")
