"""Server memory per idle WebSocket connection, with and without permessage-deflate.

    python -m bench.memory --connections 1000

For each server (Blendtune, the bare ASGI baseline, the ChannelsPlugin baseline) and each
setting (compression off, as the load tester's default; on, as browsers offer it), starts a
fresh server process, opens a few connections to warm it up, reads its RSS, opens N idle
connections in rooms of 4 (each joined: it got its welcome), waits for the process to
settle, reads the RSS again and prints (after - before) / N. A fresh process per
measurement, because freed memory stays in the process and would flatter the second one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

import psutil
from rich.console import Console
from rich.table import Table

from bench import servers
from loadtest import modes, seed
from loadtest.client import WsClient, connect
from loadtest.resources import listeners
from loadtest.worker import make_mode_named

LABELS = {
    "blendtune": "Blendtune (default: declines deflate)",
    "blendtune-deflate": "Blendtune, BLENDTUNE_WS_COMPRESSION=true",
    "bare": "bare ASGI",
    "channels": "ChannelsPlugin",
}
ROOM_SIZE = 4


def rss(port: int) -> float:
    """Resident memory of the processes listening on ``port``, in bytes."""
    total = 0
    for process in listeners(port):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return float(total)


async def open_members(
    mode: modes.Mode, members: list[modes.Member], compression: bool
) -> list[WsClient]:
    clients: list[WsClient] = []
    gate = asyncio.Semaphore(50)

    async def one(member: modes.Member) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        holder: list[WsClient] = []

        def on_text(data: bytes) -> None:
            event = mode.parse(data)
            if event[0] == modes.READY and not ready.done():
                ready.set_result(None)
            elif event[0] == modes.REPLY and holder and isinstance(event[1], bytes):
                holder[0].send_text(event[1])

        async with gate:
            client = await connect(
                mode.url(member), on_text, lambda code, reason: None, compression=compression
            )
            holder.append(client)
            for frame in mode.hello(member):
                client.send_text(frame)
            await asyncio.wait_for(ready, 30)
            clients.append(client)

    await asyncio.gather(*(one(m) for m in members))
    return clients


def members_for(url: str, count: int, seeded: seed.Seeded | None, tag: str) -> list[modes.Member]:
    out = []
    for g in range(count):
        r, m = divmod(g, ROOM_SIZE)
        room = seeded.rooms[r] if seeded else f"mem-{tag}-{r}"
        token = seeded.tokens[g] if seeded else ""
        out.append(modes.Member(room, r, m, ROOM_SIZE, url, token))
    return out


async def measure(
    mode: modes.Mode, url: str, port: int, members: list[modes.Member], compression: bool
) -> float:
    """Bytes per connection."""
    warm = await open_members(mode, members[:40], compression)
    for client in warm:
        client.close()
    await asyncio.sleep(1.5)
    before = rss(port)
    clients = await open_members(mode, members[40:], compression)
    await asyncio.sleep(2.0)
    after = rss(port)
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)
    return (after - before) / len(clients)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--servers", default=",".join(LABELS))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    count = args.connections + 40
    rooms = -(-count // ROOM_SIZE)
    results: dict[str, dict[bool, float]] = {}
    err = Console(stderr=True)
    with servers.redis_server() as (redis_url, _), servers.database() as database_url:
        seeded = None
        if any(n.startswith("blendtune") for n in names):
            seeded = asyncio.run(seed.seed(database_url, "loadtest", rooms, ROOM_SIZE))
        for name in names:
            results[name] = {}
            for compression in (False, True):
                if name.startswith("blendtune"):
                    env = {"BLENDTUNE_WS_COMPRESSION": str(name == "blendtune-deflate").lower()}
                    urls, procs = servers.start_blendtune(1, database_url, redis_url, "bt:", env)
                    mode = make_mode_named("blendtune")
                else:
                    module = {"bare": "bench.bare_broadcast", "channels": "bench.channels_baseline"}
                    urls, procs = servers.start_baseline(module[name], 1, redis_url, f"{name}:")
                    mode = make_mode_named("simple")
                try:
                    url = urls[0]
                    port = int(url.rsplit(":", 1)[1])
                    tag = f"{name}-{int(compression)}-{int(time.time())}"
                    members = members_for(
                        url, count, seeded if name.startswith("blendtune") else None, tag
                    )
                    err.print(
                        f"{LABELS[name]}: {args.connections} connections, "
                        f"compression {'on' if compression else 'off'}"
                    )
                    results[name][compression] = asyncio.run(
                        measure(mode, url, port, members, compression)
                    )
                finally:
                    servers.stop(procs)
    table = Table(title=f"server memory per idle connection ({args.connections} connections)")
    table.add_column("server", style="bold")
    table.add_column("no compression", justify="right")
    table.add_column("permessage-deflate", justify="right")
    for name, by in results.items():
        table.add_row(LABELS[name], f"{by[False] / 1024:.1f} KiB", f"{by[True] / 1024:.1f} KiB")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
