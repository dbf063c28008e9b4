"""The email outbox: every message is a row first, then a background sender delivers it.

Handlers call ``enqueue`` inside their own transaction, so a message exists exactly when the
change that caused it was committed. Each server process runs one sender (``run_sender``,
started by background.py); it claims one due message at a time with ``FOR UPDATE SKIP
LOCKED`` and keeps that row locked while sending, so two processes never send the same
message, and a process that dies mid-send leaves the row pending for the next one (delivery
is at least once).

With ``BLENDTUNE_SMTP_HOST`` set, messages go out over SMTP (aiosmtplib). Without it they are
written to the log (logger ``blendtune.outbox``) and marked sent, so a developer can copy the
link. A failed send is retried 1, 3, 7, 15, ... minutes after the message was created and
marked ``failed`` after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from db.pool import Connection
from server.accounts.metrics import account_metrics
from server.services import Services
from server.settings import Settings

_log = logging.getLogger("blendtune.outbox")

POLL_SECONDS = 1.0
MAX_ATTEMPTS = 8
SMTP_TIMEOUT_SECONDS = 30.0

_CLAIM = """
SELECT id, to_address, subject, body, attempts
FROM email_outbox
WHERE status = 'pending'
  AND created_at + (power(2, attempts) - 1) * interval '1 minute' <= now()
ORDER BY created_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""


async def enqueue(
    conn: Connection, *, user_id: uuid.UUID | None, to_address: str, subject: str, body: str
) -> uuid.UUID:
    """Store a message for the sender; call inside the transaction that caused it."""
    message_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO email_outbox (user_id, to_address, subject, body)"
        " VALUES ($1, $2, $3, $4) RETURNING id",
        user_id,
        to_address,
        subject,
        body,
    )
    return message_id


def build_message(settings: Settings, to_address: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to_address
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="blendtune")
    message.set_content(body)
    return message


async def deliver(settings: Settings, to_address: str, subject: str, body: str) -> None:
    if not settings.smtp_host:
        _log.info(
            "email (no SMTP configured) to %s: %s\n%s",
            to_address,
            subject,
            body,
            extra={"to": to_address, "subject": subject},
        )
        return
    implicit_tls = settings.smtp_port == 465
    await aiosmtplib.send(
        build_message(settings, to_address, subject, body),
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        use_tls=implicit_tls,
        start_tls=settings.smtp_starttls and not implicit_tls,
        timeout=SMTP_TIMEOUT_SECONDS,
    )


async def send_one(services: Services) -> bool:
    """Send the oldest due message, if any; True if there was one."""
    async with services.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_CLAIM)
        if row is None:
            return False
        try:
            await deliver(services.settings, row["to_address"], row["subject"], row["body"])
        except Exception as exc:
            account_metrics(services.metrics).emails.labels("failed").inc()
            attempts = row["attempts"] + 1
            _log.warning("sending email %s failed (attempt %d): %s", row["id"], attempts, exc)
            await conn.execute(
                "UPDATE email_outbox SET attempts = $2::int, last_error = $3,"
                " status = CASE WHEN $2::int >= $4::int THEN 'failed'"
                " ELSE 'pending' END::outbox_status"
                " WHERE id = $1",
                row["id"],
                attempts,
                str(exc)[:1000] or type(exc).__name__,
                MAX_ATTEMPTS,
            )
        else:
            result = "sent" if services.settings.smtp_host else "logged"
            account_metrics(services.metrics).emails.labels(result).inc()
            await conn.execute(
                "UPDATE email_outbox SET attempts = attempts + 1, status = 'sent',"
                " sent_at = now(), last_error = NULL WHERE id = $1",
                row["id"],
            )
        return True


async def run_sender(services: Services) -> None:
    while True:
        try:
            while await send_one(services):
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database may be away; the next round tries again.
            _log.exception("email outbox round failed")
        await asyncio.sleep(POLL_SECONDS)
