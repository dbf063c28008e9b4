"""The one rate limiter: fixed windows counted in Redis, so a limit holds across processes.

Each identity (a client address, an account, a user) has a counter that lives for one window:
the first event creates it with the window's expiry and later ones increment it, so a limit
is "N events per window from the first one" whichever process serves them
(``server.redis_client.count_in_window``). Denied requests count too: hammering does not
shorten the wait. Without Redis a limiter cannot count, and it refuses with 503 rather than
let unlimited guesses (of passwords, of share codes) through.

Every limit is declared at the end of this module, one beside the other: the account
endpoints count every request (``server/accounts/ratelimit.py``); share-code joins count only
wrong codes, by giving the tokens of any other outcome back (``server/share_codes/guard.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from redis.exceptions import RedisError

from server.problems import Problem
from server.redis_client import count_in_window, retry_after
from server.services import Services


class Taken(list[str]):
    """The keys one ``take`` counted on, for ``give_back``."""


class RateLimiter:
    """``take`` one token for each identity; 429 (with ``Retry-After``) when any is over."""

    def __init__(
        self,
        *parts: str,
        limit: Callable[[Services], int],
        window_seconds: int = 60,
        limited: str,
        unavailable: str,
        on_limited: Callable[[Services], None] | None = None,
    ) -> None:
        self.parts = parts  # the key prefix, e.g. ("ratelimit", "auth")
        self.limit = limit  # read from the settings on every call (tests set their own)
        self.window_seconds = window_seconds
        self.limited = limited  # "Too many requests"; the answer adds "; retry in N s."
        self.unavailable = unavailable
        self.on_limited = on_limited

    async def take(self, services: Services, **identities: str | None) -> Taken:
        """Count one event for every identity given (``None`` ones are skipped)."""
        keys = Taken(
            services.keys(*self.parts, name, value)
            for name, value in identities.items()
            if value is not None
        )
        try:
            windows = await count_in_window(services.redis, keys, self.window_seconds)
        except (RedisError, OSError) as exc:
            raise Problem(
                503, "unavailable", self.unavailable, headers={"Retry-After": "5"}
            ) from exc
        wait = retry_after(windows, self.limit(services), self.window_seconds)
        if wait:
            if self.on_limited is not None:
                self.on_limited(services)
            raise Problem(
                429,
                "rate_limited",
                f"{self.limited}; retry in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        return keys

    async def give_back(self, services: Services, taken: Taken) -> None:
        """Uncount ``taken`` (the event turned out not to count, e.g. a right share code)."""
        try:
            async with services.redis.pipeline(transaction=False) as pipe:
                for key in taken:
                    pipe.decr(key)
                await pipe.execute()
        except (RedisError, OSError):
            pass  # the counter expires within a window anyway


# ------------------------------------------------------------------ the limits


def _auth_refused(services: Services) -> None:
    # Imported here, not at the top: server.accounts imports this module (its controller
    # counts through AUTH), so a top-level import would be circular.
    from server.accounts.metrics import account_metrics

    account_metrics(services.metrics).rate_limited.inc()


# Keys ``ratelimit:auth:addr:<ip>`` and ``ratelimit:auth:acct:<digest>``.
AUTH = RateLimiter(
    "ratelimit",
    "auth",
    limit=lambda services: services.settings.auth_rate_limit_per_minute,
    limited="Too many requests",
    unavailable="Sign-in is briefly unavailable; please retry shortly.",
    on_limited=_auth_refused,
)

# Keys ``blends:join-failures:addr:<ip>`` and ``…:user:<id>``, for blends and mashups alike.
SHARE_CODE_GUESSES = RateLimiter(
    "blends",
    "join-failures",
    limit=lambda services: services.settings.share_code_failures_per_minute,
    limited="Too many attempts with share codes",
    unavailable="Joining by code is briefly unavailable; please retry shortly.",
)
