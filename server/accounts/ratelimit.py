"""Rate limits for the account endpoints, counted in Redis so they hold across processes.

Each identity (a client address, an account) has a counter that lives for one window: the
first request creates it with a 60 s expiry and later ones increment it, so the limit is
"N requests per 60 s from the first one" whichever process serves them. Denied requests count
too: hammering does not shorten the wait. Without Redis the limiter cannot count, and it
refuses (503) rather than let unlimited password guesses through.
"""

from __future__ import annotations

import hashlib

from redis.exceptions import RedisError

from server.accounts.metrics import account_metrics
from server.problems import Problem
from server.redis_client import count_in_window, retry_after
from server.services import Services

WINDOW_SECONDS = 60


def account_key(email: str) -> str:
    """A stable identity for an email that does not put the address itself into Redis."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def check(services: Services, *, address: str, account: str | None = None) -> None:
    """Count one request for ``address`` (and ``account``); raise 429 if either is over."""
    limit = services.settings.auth_rate_limit_per_minute
    keys = [services.keys("ratelimit", "auth", "addr", address)]
    if account is not None:
        keys.append(services.keys("ratelimit", "auth", "acct", account))
    try:
        windows = await count_in_window(services.redis, keys, WINDOW_SECONDS)
    except (RedisError, OSError) as exc:
        raise Problem(
            503,
            "unavailable",
            "Sign-in is briefly unavailable; please retry shortly.",
            headers={"Retry-After": "5"},
        ) from exc
    wait = retry_after(windows, limit, WINDOW_SECONDS)
    if wait:
        account_metrics(services.metrics).rate_limited.inc()
        raise Problem(
            429,
            "rate_limited",
            f"Too many requests; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
