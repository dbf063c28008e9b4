"""With no service URLs, `blendtune serve` runs on an embedded PostgreSQL and Redis that
live under the data directory and survive a restart; stopping serve (SIGTERM or SIGINT)
leaves no process of it behind, and start-up is quiet by default."""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import httpx
import psutil
import redis.asyncio as aioredis

from tests.support import ROOT, Backends, ServerProcess, eventually, free_port


def _log_of(data_dir: str) -> Path:
    # Beside the data directory, so that serve finds it missing on the first start.
    return Path(data_dir).with_name("serve.log")


async def _serve(data_dir: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")}
    env |= {"BLENDTUNE_DATA_DIR": data_dir, "BLENDTUNE_PORT": str(port)}
    log = open(_log_of(data_dir), "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    async with httpx.AsyncClient() as client:

        async def ready() -> bool:
            assert proc.poll() is None, _log_of(data_dir).read_text()
            try:
                return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, within=60, interval=0.1, what="the embedded server being ready")
    return proc


def _processes_of(proc: subprocess.Popen[bytes], data_dir: str) -> list[psutil.Process]:
    """serve, its children (redis-server among them) and the embedded postmaster with its
    children (pg_ctl daemonizes it, so it is not a child of serve)."""
    serve = psutil.Process(proc.pid)
    postmaster = psutil.Process(
        int(Path(data_dir, "postgres", "postmaster.pid").read_text().split()[0])
    )
    return [serve, *serve.children(recursive=True), postmaster, *postmaster.children()]


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _stop(proc: subprocess.Popen[bytes], data_dir: str, signum: int = signal.SIGTERM) -> int:
    """Stop serve with ``signum``; check that every process it started is gone."""
    processes = _processes_of(proc, data_dir)
    names = {p.name() for p in processes}
    assert {"redis-server", "postgres"} <= names, names
    proc.send_signal(signum)
    code = proc.wait(30)
    # The postmaster is not our child: wait for it to go (its pid file is removed last).
    _, alive = psutil.wait_procs(processes, timeout=15)
    assert [p for p in alive if _running(p)] == []
    return code


def _quiet(log: str) -> None:
    # The embedded services' chatter is debug-level only.
    for noise in ("pgserver", "initdb", "XDG_RUNTIME_DIR", "Redis shutdown failed", "Traceback"):
        assert noise not in log, (noise, log)


async def test_embedded_services_keep_data_across_restarts() -> None:
    data_dir = str(Path(tempfile.mkdtemp(prefix="bt-embedded-"), "data"))
    dsn = f"postgresql://postgres@/blendtune?host={data_dir}/postgres"

    first = await _serve(data_dir, free_port())
    try:
        conn = await asyncpg.connect(dsn)
        await conn.execute(
            "INSERT INTO users (email, username, password_hash) VALUES ('a@b.c', 'kept', 'x')"
        )
        await conn.close()
    finally:
        assert _stop(first, data_dir, signal.SIGTERM) == 0
    # Both embedded servers stopped with the process.
    assert not Path(data_dir, "postgres", "postmaster.pid").exists()
    log = _log_of(data_dir).read_text()
    _quiet(log)
    # Start-up says where the data is, and that it was just created.
    assert f"data directory {Path(data_dir).resolve()} (just created, empty)" in log

    second = await _serve(data_dir, free_port())
    try:
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT username FROM users WHERE email = 'a@b.c'") == "kept"
        await conn.close()
        secrets_file = Path(data_dir, "secrets.json")
        assert secrets_file.stat().st_mode & 0o077 == 0  # generated secrets are private
    finally:
        # Ctrl-C in a terminal: SIGINT.
        assert _stop(second, data_dir, signal.SIGINT) == 0
    log = _log_of(data_dir).read_text()
    _quiet(log)
    assert f"data directory {Path(data_dir).resolve()} (existing)" in log


async def test_external_urls_start_nothing(server: ServerProcess, backends: Backends) -> None:
    # The shared test server was given URLs: its data dir holds no embedded services.
    assert not Path(server.data_dir, "postgres").exists()
    assert not Path(server.data_dir, "redis").exists()
    client = aioredis.from_url(backends.redis_url)
    assert await client.ping()
    await client.aclose()
