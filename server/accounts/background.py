"""Background work of accounts, one set per server process: the email sender and housekeeping.

Housekeeping deletes what can no longer be used: expired sessions, verification and reset
tokens a week past their expiry, and sent emails after 30 days. It runs at start-up and then
hourly; several processes doing it at once is harmless (each DELETE is idempotent). A run that
fails (the database was unreachable) is tried again after a minute, then after twice as long
each time, up to the hour: an outage at start-up does not leave expired sessions for an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from litestar import Litestar

from db.pool import Pool
from server.accounts.outbox import run_sender
from server.services import Services

_log = logging.getLogger("blendtune.accounts")

HOUSEKEEPING_SECONDS = 3600.0
RETRY_SECONDS = 60.0  # after a failed run; doubled after each failure, up to the hour

_CLEANUP = (
    "DELETE FROM sessions WHERE expires_at < now()",
    "DELETE FROM email_verifications WHERE expires_at < now() - interval '7 days'",
    "DELETE FROM password_resets WHERE expires_at < now() - interval '7 days'",
    "DELETE FROM email_outbox WHERE status = 'sent' AND sent_at < now() - interval '30 days'",
)


class _HasPool(Protocol):
    @property
    def pool(self) -> Pool: ...


async def housekeeping_once(services: _HasPool) -> None:
    for statement in _CLEANUP:
        await services.pool.execute(statement)


async def run_housekeeping(
    services: _HasPool, *, every: float = HOUSEKEEPING_SECONDS, retry: float = RETRY_SECONDS
) -> None:
    wait = retry
    while True:
        try:
            await housekeeping_once(services)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("accounts housekeeping failed; trying again in %.0f s", wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, every)
            continue
        wait = retry
        await asyncio.sleep(every)


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Run this process's email sender and housekeeping for the life of the app."""
    services: Services = app.state.services
    tasks = [
        asyncio.create_task(run_sender(services), name="accounts-email-outbox"),
        asyncio.create_task(run_housekeeping(services), name="accounts-housekeeping"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
