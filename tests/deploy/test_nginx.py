"""deploy/nginx.conf in front of two server processes, with Debian's nginx (issue #15).

Rooms, REST and uploads work through the load balancer; SIGTERM to one upstream moves its
room clients onto the other with nothing acknowledged lost; and the address nginx saw is the
one the rate limits count (a client cannot pick another by sending X-Forwarded-For).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.accounts.helpers import new_email
from tests.catalog.helpers import audio_bytes
from tests.rooms.client import Client, join
from tests.rooms.conftest import ROOM_ENV, Rooms
from tests.support import (
    ROOT,
    Backends,
    Listening,
    ServerProcess,
    assert_problem,
    eventually,
    free_port,
    reachable,
)

LIMIT = 4
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx(Listening):
    """Debian's nginx with the project's site config, pointed at the given upstreams."""

    def __init__(self, upstreams: list[int]) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bt-nginx-"))
        site = (ROOT / "deploy" / "nginx.conf").read_text()
        servers = "".join(f"server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;\n" for p in upstreams)
        upstream = f"upstream blendtune {{\n{servers}}}"
        site = re.sub(r"upstream blendtune \{.*?\}", upstream, site, flags=re.S)
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        for folder in ("client_body", "proxy", "logs"):
            (self.dir / folder).mkdir()
        (self.dir / "nginx.conf").write_text(
            f"""
            worker_processes 1;
            pid {self.dir}/nginx.pid;
            error_log {self.dir}/logs/error.log warn;
            events {{ worker_connections 1024; }}
            http {{
                access_log off;
                client_body_temp_path {self.dir}/client_body;
                proxy_temp_path {self.dir}/proxy;
                {site}
            }}
            """
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def nginx_binary() -> Iterator[str]:
    # `./run setup` installs Debian's nginx when it is missing; never skip: CI must run this.
    assert Path(NGINX).exists(), "nginx is not installed: run `./run setup` (apt-get install nginx)"
    yield NGINX


@pytest.fixture(scope="module")
async def balanced(
    backends: Backends, nginx_binary: str
) -> AsyncIterator[tuple[Nginx, ServerProcess, ServerProcess]]:
    """One deployment for the module (two processes and nginx take a while to start): the
    tests use addresses, users and rooms of their own, and a test that stops an upstream
    starts it again."""
    env = {**ROOM_ENV, "BLENDTUNE_AUTH_RATE_LIMIT_PER_MINUTE": str(LIMIT)}
    a, b = ServerProcess(backends, env), ServerProcess(backends, env)
    a.start()
    b.start()
    balancer = Nginx([a.port, b.port])
    try:
        await a.wait_ready()
        await b.wait_ready()
        balancer.start()
        await eventually(
            lambda: asyncio.to_thread(reachable, "127.0.0.1", balancer.port), what="nginx up"
        )
        yield balancer, a, b
    finally:
        balancer.stop()
        for server in (a, b):
            with contextlib.suppress(Exception):
                server.terminate()


def _from(address: str, base_url: str) -> httpx.AsyncClient:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 is loopback)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30)


async def test_rest_uploads_and_rooms_work_through_nginx(
    balanced: tuple[Nginx, ServerProcess, ServerProcess], notes: Rooms
) -> None:
    balancer, _, _ = balanced
    alice, bob = await notes.user(), await notes.user()
    async with _from("127.0.0.21", balancer.url) as client:
        whoami = await client.get("/auth/whoami", headers=alice.headers)
        assert whoami.status_code == 200 and whoami.json()["user_id"] == str(alice.id)
        wav = audio_bytes("wav", seconds=1.0)
        upload = await client.post(
            "/uploads", files={"file": ("tone.wav", wav, "audio/wav")}, headers=alice.headers
        )
        assert upload.status_code == 202, upload.text
        # Either process may answer: both see the same upload.
        for _ in range(4):
            read = await client.get(f"/uploads/{upload.json()['id']}", headers=alice.headers)
            assert read.status_code == 200 and read.json()["file_size_bytes"] == len(wav)

    room = await notes.create((alice, "editor"), (bob, "editor"))
    writer = await join(balancer.ws_url, room, alice.token)
    reader = await join(balancer.ws_url, room, bob.token)
    op_id = await writer.ops([{"op": "title", "title": "through nginx"}])
    assert (await writer.ack(op_id))["type"] == "ack"
    await reader.until_seq(1)
    assert reader.seen == [1]
    await writer.close()
    await reader.close()


async def test_sigterm_to_one_upstream_moves_its_clients_to_the_other(
    balanced: tuple[Nginx, ServerProcess, ServerProcess], notes: Rooms
) -> None:
    balancer, a, b = balanced
    users = [await notes.user() for _ in range(4)]
    room = await notes.create(*((user, "editor") for user in users))
    # Round robin spreads the four over both upstreams.
    clients = [await join(balancer.ws_url, room, user.token) for user in users]
    acked: dict[str, int] = {}

    async def write(client: Client, prefix: str, count: int) -> None:
        for i in range(count):
            op_id = await client.ops([{"op": "title", "title": f"{prefix}{i}"}], f"{prefix}{i}")
            acked[op_id] = (await client.ack(op_id))["seq"]

    await asyncio.gather(*(write(c, f"before{n}-", 5) for n, c in enumerate(clients)))
    a.terminate()  # SIGTERM: a's clients are told to reconnect (1012)
    try:
        codes = await asyncio.gather(*(_closed_or_none(c) for c in clients))
        assert 1012 in codes  # some clients were on a
        # Everyone reconnects through nginx (now only b answers) and resumes where they were.
        resumed = [
            await join(balancer.ws_url, room, user.token, last_seq=client.seq)
            for user, client in zip(users, clients, strict=True)
        ]
        await asyncio.gather(*(write(c, f"after{n}-", 5) for n, c in enumerate(resumed)))
        total = 40
        await asyncio.gather(*(c.until_seq(total) for c in resumed))
        rows = await notes.ops(room)
        assert rows[-1]["seq"] == total
        assert sorted(acked.values()) == list(range(1, total + 1))  # every ack, once, no gap
        for client in resumed:
            assert client.seen[-1] == total
            await client.close()
        assert b.proc is not None and b.proc.poll() is None
    finally:
        # The deployment is the module's: a comes back (same port, same upstream).
        a.start()
        await a.wait_ready()


async def _closed_or_none(client: Client) -> int | None:
    """The close code if the server closes this client soon (its process is stopping)."""
    with contextlib.suppress(TimeoutError):
        return await client.closed(within=3)
    await client.close()
    return None


async def test_the_address_nginx_saw_is_the_one_rate_limited(
    balanced: tuple[Nginx, ServerProcess, ServerProcess],
) -> None:
    balancer, _, _ = balanced
    login = {"password": "whatever pass"}
    noisy, calm = _from("127.0.0.31", balancer.url), _from("127.0.0.32", balancer.url)
    async with noisy, calm:
        for i in range(LIMIT):
            # A client cannot escape its limit by claiming other addresses: nginx replaces
            # X-Forwarded-For with the address it saw.
            response = await noisy.post(
                "/auth/login",
                json={**login, "email": new_email()},
                headers={"X-Forwarded-For": f"10.9.8.{i}"},
            )
            assert_problem(response, 401, "invalid_credentials")
        limited = await noisy.post(
            "/auth/login",
            json={**login, "email": new_email()},
            headers={"X-Forwarded-For": "10.9.9.9"},
        )
        assert_problem(limited, 429, "rate_limited")
        # Another address behind the same balancer has its own counter.
        response = await calm.post("/auth/login", json={**login, "email": new_email()})
        assert_problem(response, 401, "invalid_credentials")
