"""Accounts counters on /metrics move with what happens."""

from __future__ import annotations

import re

import asyncpg
import httpx

from tests.accounts.helpers import PASSWORD, client_for, register, wait_for_email
from tests.support import ServerProcess


async def _read(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(blendtune_(?:auth|accounts|emails)_\w+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


async def test_counters_follow_registrations_logins_and_lockouts(
    server: ServerProcess, db: asyncpg.Connection
) -> None:
    async with client_for(server.url) as client:
        before = await _read(client)
        account = await register(client)
        assert (
            await client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
        ).status_code == 200
        for _ in range(5):
            await client.post(
                "/auth/login", json={"email": account.email, "password": "wrong password!!"}
            )
        await wait_for_email(db, account.email, "locked")
        after = await _read(client)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert delta("blendtune_accounts_registered_total") == 1
    assert delta('blendtune_auth_logins_total{outcome="ok"}') == 1
    assert delta('blendtune_auth_logins_total{outcome="failed"}') == 5
    assert delta("blendtune_auth_lockouts_total") == 1
