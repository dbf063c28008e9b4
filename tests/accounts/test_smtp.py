"""The outbox sender over real SMTP (an aiosmtpd server in the test process).

These tests use a database of their own: the run's shared server (which has no SMTP host
and would log-and-mark-sent every message) must not claim their messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from db import migrate
from tests.accounts.helpers import client_for, register, verification_link
from tests.conftest import StartServer
from tests.support import eventually, free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def own_db(fresh_database: str) -> AsyncIterator[str]:
    await migrate.forwards(fresh_database)
    yield fresh_database


async def _wait(condition: Any, within: float = 20.0) -> None:
    await eventually(condition, within=within)


async def test_verification_email_is_sent_over_smtp(
    own_db: str, smtp: tuple[Inbox, int], start_server: StartServer
) -> None:
    inbox, port = smtp
    server = await start_server(
        env={
            "BLENDTUNE_DATABASE_URL": own_db,
            "BLENDTUNE_SMTP_HOST": "127.0.0.1",
            "BLENDTUNE_SMTP_PORT": str(port),
            "BLENDTUNE_SMTP_STARTTLS": "false",
            "BLENDTUNE_SMTP_FROM": "Blendtune Test <test@blendtune.local>",
            "BLENDTUNE_PUBLIC_URL": "https://blendtune.example",
        }
    )
    async with client_for(server.url) as client:
        account = await register(client)

    async def arrived() -> bool:
        return any(m["To"] == account.email for m in inbox.messages)

    await _wait(arrived)
    message = next(m for m in inbox.messages if m["To"] == account.email)
    assert message["From"] == "Blendtune Test <test@blendtune.local>"
    assert "Confirm" in message["Subject"]
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    link = verification_link(body)
    assert link.startswith("https://blendtune.example/verify?token=")

    conn = await asyncpg.connect(own_db)
    try:

        async def marked_sent() -> bool:
            status = await conn.fetchval(
                "SELECT status FROM email_outbox WHERE to_address = $1", account.email
            )
            return bool(status == "sent")

        await _wait(marked_sent)
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert 'blendtune_emails_total{result="sent"} 1.0' in (await client.get("/metrics")).text


async def test_failed_send_is_kept_for_retry(own_db: str, start_server: StartServer) -> None:
    closed_port = free_port()  # nothing listens here
    server = await start_server(
        env={
            "BLENDTUNE_DATABASE_URL": own_db,
            "BLENDTUNE_SMTP_HOST": "127.0.0.1",
            "BLENDTUNE_SMTP_PORT": str(closed_port),
            "BLENDTUNE_SMTP_STARTTLS": "false",
        }
    )
    async with client_for(server.url) as client:
        account = await register(client)
    conn = await asyncpg.connect(own_db)
    try:

        async def attempted() -> bool:
            attempts = await conn.fetchval(
                "SELECT attempts FROM email_outbox WHERE to_address = $1", account.email
            )
            return bool(attempts)

        await _wait(attempted)
        row = await conn.fetchrow(
            "SELECT status, attempts, last_error, sent_at FROM email_outbox WHERE to_address = $1",
            account.email,
        )
        assert row is not None
        # One attempt, kept pending with the error; the next try waits a minute.
        assert row["status"] == "pending" and row["attempts"] == 1
        assert row["last_error"] and row["sent_at"] is None
        # Proof that the sender passed over it: a message queued after the failure is
        # attempted (messages are claimed oldest first, one at a time), and the failed one
        # still has its single attempt.
        later = await conn.fetchval(
            "INSERT INTO email_outbox (to_address, subject, body)"
            " VALUES ('later@example.com', 'Later', 'queued after the failure') RETURNING id"
        )

        async def later_attempted() -> bool:
            return bool(
                await conn.fetchval("SELECT attempts FROM email_outbox WHERE id = $1", later)
            )

        await _wait(later_attempted)
        assert (
            await conn.fetchval(
                "SELECT attempts FROM email_outbox WHERE to_address = $1", account.email
            )
            == 1
        )
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=server.url) as client:
        metrics = (await client.get("/metrics")).text
    assert 'blendtune_emails_total{result="failed"} 2.0' in metrics  # (the later one too)
