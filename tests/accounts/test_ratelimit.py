"""Rate limits hold across server processes (counters in Redis), per address and per account."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.accounts.helpers import (
    PASSWORD,
    client_for,
    counts,
    new_email,
    register,
)
from tests.conftest import StartServer
from tests.support import (
    Backends,
    RedisProcess,
    ServerProcess,
    assert_problem,
    new_address,
    serving,
)

LIMIT = 5


@pytest.fixture(scope="module")
async def two_servers(backends: Backends) -> AsyncIterator[list[ServerProcess]]:
    """Two processes with a low limit, started side by side and shared by the module's
    tests: each counts its own address or account, so they cannot trip each other."""
    async with serving(backends, {"BLENDTUNE_AUTH_RATE_LIMIT_PER_MINUTE": str(LIMIT)}) as pair:
        yield pair


def _retry_after(response: httpx.Response) -> int:
    assert_problem(response, 429, "rate_limited")
    value = int(response.headers["retry-after"])
    assert 1 <= value <= 60
    return value


async def test_address_limit_holds_across_two_processes(
    two_servers: list[ServerProcess], db: asyncpg.Connection
) -> None:
    servers = two_servers
    address = new_address()
    clients = [client_for(s.url, address) for s in servers]
    try:
        # A different unknown email each time: only the address counter can trip.
        for i in range(LIMIT):
            response = await clients[i % 2].post(
                "/auth/login", json={"email": new_email(), "password": "whatever pass"}
            )
            assert_problem(response, 401, "invalid_credentials")
        for i in range(2):
            _retry_after(
                await clients[i % 2].post(
                    "/auth/login", json={"email": new_email(), "password": "whatever pass"}
                )
            )
        # The limit covers registration and reset requests from that address too.
        before = await counts(db)
        _retry_after(
            await clients[0].post(
                "/auth/register",
                json={"email": new_email(), "password": PASSWORD, "username": "limited_user"},
            )
        )
        _retry_after(await clients[1].post("/auth/password-reset", json={"email": new_email()}))
        assert await counts(db) == before
        # Another address is not affected.
        async with client_for(servers[1].url) as other:
            response = await other.post(
                "/auth/login", json={"email": new_email(), "password": "whatever pass"}
            )
            assert response.status_code == 401
    finally:
        for client in clients:
            await client.aclose()


async def test_account_limit_holds_across_addresses_and_processes(
    two_servers: list[ServerProcess], db: asyncpg.Connection
) -> None:
    servers = two_servers
    async with client_for(servers[0].url) as client:
        account = await register(client)  # the account's first request in this window
    for i in range(LIMIT - 1):
        async with client_for(servers[i % 2].url) as client:
            response = await client.post(
                "/auth/login", json={"email": account.email, "password": "wrong password!!"}
            )
            assert_problem(response, 401, "invalid_credentials")
    # Right password, fresh address: the account's budget is spent, so no session is made.
    before = await counts(db)
    for server in servers:
        async with client_for(server.url) as client:
            _retry_after(
                await client.post(
                    "/auth/login", json={"email": account.email.upper(), "password": PASSWORD}
                )
            )
    assert await counts(db) == before
    failures = await db.fetchval(
        "SELECT failed_login_attempts FROM users WHERE id = $1", account.user_id
    )
    assert failures == LIMIT - 1


async def test_limiter_without_redis_refuses_clearly(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    redis = RedisProcess()
    redis.start()
    try:
        server = await start_server(env={"BLENDTUNE_REDIS_URL": redis.url})
        async with client_for(server.url) as client:
            account = await register(client)
            redis.stop()
            before = await counts(db)
            response = await client.post(
                "/auth/login", json={"email": account.email, "password": PASSWORD}
            )
            assert_problem(response, 503, "unavailable")
            assert response.headers["retry-after"]
            assert await counts(db) == before
    finally:
        redis.stop()
