"""The account endpoints' rate limit: every request counts, per client address and per
account (``server/ratelimit.py`` does the counting; keys ``ratelimit:auth:addr:<ip>`` and
``ratelimit:auth:acct:<digest>``)."""

from __future__ import annotations

import hashlib

from server.ratelimit import AUTH
from server.services import Services


def account_key(email: str) -> str:
    """A stable identity for an email that does not put the address itself into Redis."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def check(services: Services, *, address: str, account: str | None = None) -> None:
    """Count one request for ``address`` (and ``account``); raise 429 if either is over."""
    await AUTH.take(services, addr=address, acct=account)
