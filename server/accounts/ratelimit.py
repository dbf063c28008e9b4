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
        async with services.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                # SET NX EX starts the window; INCR keeps the expiry that SET gave the key.
                pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
                pipe.incr(key)
                pipe.ttl(key)
            results = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise Problem(
            503,
            "unavailable",
            "Sign-in is briefly unavailable; please retry shortly.",
            headers={"Retry-After": "5"},
        ) from exc
    retry_after = 0
    for i in range(len(keys)):
        count, ttl = int(results[3 * i + 1]), int(results[3 * i + 2])
        if count > limit:
            retry_after = max(retry_after, ttl if ttl > 0 else WINDOW_SECONDS)
    if retry_after:
        account_metrics(services.metrics).rate_limited.inc()
        raise Problem(
            429,
            "rate_limited",
            f"Too many requests; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
