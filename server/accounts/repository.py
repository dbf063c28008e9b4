"""Accounts in PostgreSQL: every statement of the accounts domain but the outbox's
(``outbox.py``) and the session lookup shared with WebSockets (``server/auth.py``).

Functions take the caller's connection (the service holds the transaction) and return
msgspec Structs converted from the records (``db/rows.py``). Most statements are SQL: the
case-insensitive email match (``lower(email)``, the unique index's expression), the lockout
counter that must count concurrent failures in one statement, intervals computed by the
database, ``ON CONFLICT`` upserts and the admins' advisory lock; the plain reads and deletes
by key use Piccolo's query builder (``db/query.py``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from db import query
from db.pool import Connection
from db.rows import returned, row_as, rows_as
from db.tables.accounts import Session, User, UserRole
from server.accounts.schemas import Account, Profile, ProfilePatch, SessionInfo
from server.auth import hash_token

USER_AGENT_MAX = 512
TokenTable = Literal["email_verifications", "password_resets"]


# ------------------------------------------------------------------ users


async def insert_user(conn: Connection, email: str, username: str, password_hash: str) -> Account:
    """A new user and their empty profile. Raises ``asyncpg.UniqueViolationError`` for a
    taken email (any case) or username."""
    row = await conn.fetchrow(
        "INSERT INTO users (email, username, password_hash) VALUES ($1, $2, $3)"
        " RETURNING id AS user_id, email, username, email_verified, created_at",
        email,
        username,
        password_hash,
    )
    account = row_as(Account, returned(row))
    await conn.execute("INSERT INTO profiles (user_id) VALUES ($1)", account.user_id)
    return account


class Credentials(msgspec.Struct, frozen=True):
    id: uuid.UUID
    email: str
    username: str
    password_hash: str
    locked: bool
    email_verified: bool


_CREDENTIALS = (
    "SELECT id, email, username, password_hash, email_verified,"
    " coalesce(locked_until > now(), false) AS locked FROM users"
)


async def credentials_by_email(conn: Connection, email: str) -> Credentials | None:
    row = await conn.fetchrow(f"{_CREDENTIALS} WHERE lower(email) = lower($1)", email)
    return None if row is None else row_as(Credentials, row)


async def credentials(
    conn: Connection, user_id: uuid.UUID, *, lock: bool = False
) -> Credentials | None:
    row = await conn.fetchrow(
        f"{_CREDENTIALS} WHERE id = $1" + (" FOR UPDATE" if lock else ""), user_id
    )
    return None if row is None else row_as(Credentials, row)


async def user_exists(conn: Connection, user_id: uuid.UUID) -> bool:
    return bool(await query.fetchval(conn, User.exists().where(User.id == user_id)))


async def mark_verified(conn: Connection, user_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE users SET email_verified = true,"
        " email_verified_at = coalesce(email_verified_at, now()), updated_at = now()"
        " WHERE id = $1",
        user_id,
    )


async def set_password(
    conn: Connection, user_id: uuid.UUID, password_hash: str, *, verified: bool = False
) -> None:
    """A new password; ``verified`` (a reset: the emailed token proves the address) also
    lifts a lockout and confirms the email address."""
    if verified:
        await conn.execute(
            "UPDATE users SET password_hash = $2, failed_login_attempts = 0,"
            " locked_until = NULL, email_verified = true,"
            " email_verified_at = coalesce(email_verified_at, now()), updated_at = now()"
            " WHERE id = $1",
            user_id,
            password_hash,
        )
    else:
        await conn.execute(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            user_id,
            password_hash,
        )


async def delete_user(conn: Connection, user_id: uuid.UUID) -> None:
    # Every table holding something the user owns references users with ON DELETE CASCADE
    # (migrations/schema_0001.sql); references to their actions (granted_by, reviewed_by,
    # added_by) become NULL.
    await query.execute(conn, User.delete().where(User.id == user_id))


# ------------------------------------------------------------------ sign-in


async def clear_failures(conn: Connection, user_id: uuid.UUID, new_hash: str | None) -> bool:
    """A successful sign-in: reset the failure count (and store a rehashed password); False
    when concurrent failures locked the account meanwhile (the lock wins)."""
    unlocked = await conn.fetchval(
        "UPDATE users SET failed_login_attempts = 0, locked_until = NULL,"
        " password_hash = coalesce($2, password_hash)"
        " WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now()) RETURNING id",
        user_id,
        new_hash,
    )
    return unlocked is not None


async def count_failure(
    conn: Connection, user_id: uuid.UUID, threshold: int, lock_for: timedelta
) -> datetime | None:
    """Count a failed password; when it reaches ``threshold``, lock the account and return
    until when. One statement, so concurrent failures each count; the count restarts for the
    attempts after the lock ends."""
    locked_until: datetime | None = await conn.fetchval(
        "UPDATE users SET"
        " failed_login_attempts = CASE WHEN failed_login_attempts + 1 >= $2 THEN 0"
        "   ELSE failed_login_attempts + 1 END,"
        " locked_until = CASE WHEN failed_login_attempts + 1 >= $2"
        "   THEN now() + $3::interval ELSE locked_until END"
        " WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now())"
        " RETURNING CASE WHEN locked_until > now() THEN locked_until END",
        user_id,
        threshold,
        lock_for,
    )
    return locked_until


# ------------------------------------------------------------------ sessions


class NewSessionRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    expires_at: datetime


async def insert_session(
    conn: Connection,
    user_id: uuid.UUID,
    token: str,
    ttl: timedelta,
    ip_address: str | None,
    user_agent: str | None,
) -> NewSessionRow:
    row = await conn.fetchrow(
        "INSERT INTO sessions (user_id, token_hash, ip_address, user_agent, expires_at)"
        " VALUES ($1, $2, $3::inet, $4, now() + $5::interval) RETURNING id, expires_at",
        user_id,
        hash_token(token),
        ip_address,
        (user_agent or None) and user_agent[:USER_AGENT_MAX],
        ttl,
    )
    return row_as(NewSessionRow, returned(row))


async def live_sessions(
    conn: Connection, user_id: uuid.UUID, current: uuid.UUID
) -> list[SessionInfo]:
    rows = await conn.fetch(
        "SELECT id, created_at, last_activity, expires_at, host(ip_address) AS ip_address,"
        " user_agent, id = $2 AS current"
        " FROM sessions WHERE user_id = $1 AND expires_at > now()"
        " ORDER BY last_activity DESC, id",
        user_id,
        current,
    )
    return rows_as(SessionInfo, rows)


async def delete_session(
    conn: Connection, session_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> bool:
    """Delete a session (of ``user_id``, when given); whether there was one."""
    delete = Session.delete().where(Session.id == session_id)
    if user_id is not None:
        delete = delete.where(Session.user_id == user_id)  # where() clauses are ANDed
    deleted = await query.fetchval(conn, delete.returning(Session.id))
    return deleted is not None


async def delete_sessions(
    conn: Connection, user_id: uuid.UUID, *, except_id: uuid.UUID | None = None
) -> int:
    """Delete every session of ``user_id`` (but ``except_id``); how many."""
    delete = Session.delete().where(Session.user_id == user_id)
    if except_id is not None:
        delete = delete.where(Session.id != except_id)  # where() clauses are ANDed
    rows = await query.fetch(conn, delete.returning(Session.id))
    return len(rows)


# ------------------------------------------------------------------ single-use tokens


async def insert_token(
    conn: Connection, table: TokenTable, user_id: uuid.UUID, token: str, ttl: timedelta
) -> None:
    await conn.execute(
        f"INSERT INTO {table} (user_id, token_hash, expires_at)"
        " VALUES ($1, $2, now() + $3::interval)",
        user_id,
        hash_token(token),
        ttl,
    )


async def use_token(conn: Connection, table: TokenTable, token_hash: bytes) -> uuid.UUID | None:
    """Spend a live token; its user, None when it is unknown, used or expired."""
    user_id: uuid.UUID | None = await conn.fetchval(
        f"UPDATE {table} SET used_at = now()"
        " WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()"
        " RETURNING user_id",
        token_hash,
    )
    return user_id


class TokenState(msgspec.Struct, frozen=True):
    used: bool
    expired: bool


async def token_state(conn: Connection, table: TokenTable, token_hash: bytes) -> TokenState | None:
    row = await conn.fetchrow(
        f"SELECT used_at IS NOT NULL AS used, expires_at <= now() AS expired FROM {table}"
        " WHERE token_hash = $1",
        token_hash,
    )
    return None if row is None else row_as(TokenState, row)


class ResetHolder(msgspec.Struct, frozen=True):
    user_id: uuid.UUID
    email: str
    username: str


async def reset_holder(conn: Connection, token_hash: bytes) -> ResetHolder | None:
    """The user a live reset token belongs to."""
    row = await conn.fetchrow(
        "SELECT r.user_id, u.email, u.username FROM password_resets r"
        " JOIN users u ON u.id = r.user_id"
        " WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()",
        token_hash,
    )
    return None if row is None else row_as(ResetHolder, row)


async def spend_resets(conn: Connection, user_id: uuid.UUID) -> None:
    """Every outstanding reset link of the user stops working."""
    await conn.execute(
        "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
        user_id,
    )


# ------------------------------------------------------------------ profile


class MeRow(Profile):
    """The profile's columns and the user's, in one row."""

    user_id: uuid.UUID
    email: str
    username: str
    email_verified: bool
    created_at: datetime
    roles: list[str]


async def me(conn: Connection, user_id: uuid.UUID) -> MeRow | None:
    row = await conn.fetchrow(
        """
        SELECT u.id AS user_id, u.email, u.username, u.email_verified, u.created_at,
               p.display_name, p.avatar_url, p.bio, p.country, p.timezone,
               coalesce(p.language, 'en') AS language,
               coalesce((SELECT array_agg(r.role::text ORDER BY r.role::text)
                         FROM user_roles r WHERE r.user_id = u.id), '{}') AS roles
        FROM users u LEFT JOIN profiles p ON p.user_id = u.id
        WHERE u.id = $1
        """,
        user_id,
    )
    return None if row is None else row_as(MeRow, row)


PROFILE_FIELDS = ("display_name", "avatar_url", "bio", "country", "timezone", "language")


async def upsert_profile(conn: Connection, user_id: uuid.UUID, changes: dict[str, object]) -> None:
    """Set the named profile fields (names from ``PROFILE_FIELDS``, never from a request)."""
    names = [name for name in PROFILE_FIELDS if name in changes]
    if not names:
        return
    columns = ", ".join(names)
    values = ", ".join(f"${i + 2}" for i in range(len(names)))
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names)
    await conn.execute(
        f"INSERT INTO profiles (user_id, {columns}) VALUES ($1, {values})"
        f" ON CONFLICT (user_id) DO UPDATE SET {updates}, updated_at = now()",
        user_id,
        *(changes[n] for n in names),
    )


def profile_changes(patch: ProfilePatch) -> dict[str, object]:
    return {
        name: getattr(patch, name)
        for name in PROFILE_FIELDS
        if getattr(patch, name) is not msgspec.UNSET
    }


# ------------------------------------------------------------------ roles


async def roles(conn: Connection, user_id: uuid.UUID) -> list[str] | None:
    """The user's granted roles (without the implicit ``user``); None for no such user."""
    row = await conn.fetchrow(
        "SELECT coalesce((SELECT array_agg(r.role::text) FROM user_roles r"
        " WHERE r.user_id = u.id), '{}') AS roles FROM users u WHERE u.id = $1",
        user_id,
    )
    return None if row is None else list(row["roles"])


async def grant(conn: Connection, user_id: uuid.UUID, role: str, by: uuid.UUID) -> None:
    """Raises ``asyncpg.ForeignKeyViolationError`` for no such user."""
    await conn.execute(
        "INSERT INTO user_roles (user_id, role, granted_by) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id, role) DO NOTHING",
        user_id,
        role,
        by,
    )


async def admins_locked(conn: Connection) -> list[uuid.UUID]:
    """The admins, with admin revocations serialised until the transaction ends (so two
    admins cannot remove each other at once)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('blendtune:admins'))")
    rows = await query.fetch(
        conn, UserRole.select(UserRole.user_id).where(UserRole.role == "admin")
    )
    return [r["user_id"] for r in rows]


async def revoke(conn: Connection, user_id: uuid.UUID, role: str) -> None:
    await query.execute(
        conn, UserRole.delete().where((UserRole.user_id == user_id) & (UserRole.role == role))
    )
