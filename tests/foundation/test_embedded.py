"""With no service URLs, `blendtune serve` runs on an embedded PostgreSQL and Redis that
live under the data directory and survive a restart."""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import httpx
import redis.asyncio as aioredis

from tests.support import ROOT, free_port


async def _serve(data_dir: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")}
    env |= {"BLENDTUNE_DATA_DIR": data_dir, "BLENDTUNE_PORT": str(port)}
    log = open(Path(data_dir) / f"serve-{port}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            assert proc.poll() is None, (Path(data_dir) / f"serve-{port}.log").read_text()
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the embedded server did not become ready in 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


async def test_embedded_services_keep_data_across_restarts() -> None:
    data_dir = tempfile.mkdtemp(prefix="bt-embedded-")
    dsn = f"postgresql://postgres@/blendtune?host={data_dir}/postgres"

    first = await _serve(data_dir, free_port())
    try:
        conn = await asyncpg.connect(dsn)
        await conn.execute(
            "INSERT INTO users (email, username, password_hash) VALUES ('a@b.c', 'kept', 'x')"
        )
        await conn.close()
    finally:
        assert _stop(first) == 0
    # Both embedded servers stopped with the process.
    assert not Path(data_dir, "postgres", "postmaster.pid").exists()

    second = await _serve(data_dir, free_port())
    try:
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT username FROM users WHERE email = 'a@b.c'") == "kept"
        await conn.close()
        secrets_file = Path(data_dir, "secrets.json")
        assert secrets_file.stat().st_mode & 0o077 == 0  # generated secrets are private
    finally:
        assert _stop(second) == 0


async def test_external_urls_start_nothing(server, backends) -> None:  # type: ignore[no-untyped-def]
    # The shared test server was given URLs: its data dir holds no embedded services.
    assert not Path(server.data_dir, "postgres").exists()
    assert not Path(server.data_dir, "redis").exists()
    client = aioredis.from_url(backends.redis_url)
    assert await client.ping()
    await client.aclose()
