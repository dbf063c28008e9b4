"""The limit on guessing share codes, counted in Redis so it holds across processes.

Every join by code first takes a token from two counters, one for the client address and one
for the user (each lives 60 s from its first use); a join that succeeds gives its tokens
back, so only failures add up. Over ``share_code_failures_per_minute`` on either counter the
request is refused with 429 before the code is even looked up, whether it is right or not.
Without Redis the limiter cannot count and refuses (503) rather than allow unlimited guesses.
"""

from __future__ import annotations

import uuid

from redis.exceptions import RedisError

from server.problems import Problem
from server.redis_client import count_in_window, retry_after
from server.services import Services

WINDOW_SECONDS = 60


def _unavailable(exc: Exception) -> Problem:
    problem = Problem(
        503,
        "unavailable",
        "Joining by code is briefly unavailable; please retry shortly.",
        headers={"Retry-After": "5"},
    )
    problem.__cause__ = exc
    return problem


async def take(services: Services, address: str, user_id: uuid.UUID) -> list[str]:
    """Count one attempt; 429 when over the limit. Returns the keys to ``give_back``."""
    keys = [
        services.keys("blends", "join-failures", "addr", address),
        services.keys("blends", "join-failures", "user", str(user_id)),
    ]
    try:
        windows = await count_in_window(services.redis, keys, WINDOW_SECONDS)
    except (RedisError, OSError) as exc:
        raise _unavailable(exc) from exc
    limit = services.settings.share_code_failures_per_minute
    wait = retry_after(windows, limit, WINDOW_SECONDS)
    if wait:
        raise Problem(
            429,
            "rate_limited",
            f"Too many attempts with share codes; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
    return keys


async def give_back(services: Services, keys: list[str]) -> None:
    """A successful join does not count against the limit."""
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.decr(key)
            await pipe.execute()
    except (RedisError, OSError):
        pass  # the counter expires within a minute anyway
