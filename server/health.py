"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import asyncpg
import msgspec
from litestar import Response, get

from server.problems import problem_response
from server.services import Services

_CHECK_TIMEOUT = 2.0


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


@get("/healthz", sync_to_thread=False, tags=["health"])
def healthz() -> Health:
    """The process is alive and serving requests."""
    return Health(status="ok")


@get("/readyz", tags=["health"])
async def readyz(services: Services) -> Response[Any]:
    """PostgreSQL and Redis both answer; 503 naming the one that does not, otherwise."""
    results = await asyncio.gather(_check(_ping_database(services)), _check(_ping_redis(services)))
    checks = {"database": results[0], "redis": results[1]}
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        detail = "; ".join(f"{name}: {checks[name]}" for name in failed)
        return problem_response(503, f"not ready: {detail}", code="not_ready")
    return Response(Health(status="ok", checks=checks))


async def _ping_database(services: Services) -> None:
    # Its own short-lived connection, not one of the pool's: readiness asks whether
    # PostgreSQL answers, and a pool busy with requests (which then shed load with 503
    # unavailable, db/pool.py) must not make a healthy process look down to the balancer.
    assert services.settings.database_url is not None
    conn = await asyncpg.connect(services.settings.database_url, timeout=_CHECK_TIMEOUT)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


async def _ping_redis(services: Services) -> None:
    await services.redis.ping()


async def _check(probe: Coroutine[Any, Any, None]) -> str:
    try:
        await asyncio.wait_for(probe, _CHECK_TIMEOUT)
    except TimeoutError:
        return "timed out"
    except Exception as exc:  # any failure means "not ready"; say which
        return f"unavailable ({type(exc).__name__})"
    return "ok"
