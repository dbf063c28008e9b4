"""Account operations: registration, verification, sign-in, sessions, resets, profile, roles.

Written in SQL on the asyncpg pool: every operation is one or two short transactions, and
each one either completes or writes nothing. Handlers in controller.py do the HTTP part.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import asyncpg
import msgspec

from db.rows import returned
from server.accounts import outbox, passwords
from server.accounts.metrics import account_metrics
from server.accounts.schemas import (
    Account,
    Me,
    Profile,
    ProfilePatch,
    RegisterRequest,
    SessionInfo,
    UserRoles,
)
from server.auth import Principal, hash_token, new_token
from server.problems import Problem
from server.services import Services

_log = logging.getLogger("blendtune.accounts")

VERIFICATION_TTL = timedelta(hours=24)
RESET_TTL = timedelta(hours=1)
USER_AGENT_MAX = 512

INVALID_CREDENTIALS = (
    "The email or password is wrong, or the account is locked for a while after too many "
    "failed attempts."
)


def _invalid_credentials() -> Problem:
    return Problem(401, "invalid_credentials", INVALID_CREDENTIALS)


def client_address(host: str | None) -> str | None:
    """The address to store for a session (None when it is not an IP, e.g. a Unix socket)."""
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


# ------------------------------------------------------------------ registration


async def register(services: Services, request: RegisterRequest) -> Account:
    violation = passwords.policy_violation(
        request.password, email=request.email, username=request.username
    )
    if violation:
        raise Problem(400, "weak_password", violation)
    password_hash = await passwords.hash_password(request.password)
    token = new_token()
    async with services.pool.acquire() as conn, conn.transaction():
        try:
            row = returned(
                await conn.fetchrow(
                    "INSERT INTO users (email, username, password_hash) VALUES ($1, $2, $3)"
                    " RETURNING id, email, username, email_verified, created_at",
                    request.email,
                    request.username,
                    password_hash,
                )
            )
        except asyncpg.UniqueViolationError as exc:
            # Two registrations racing for one address (in any case) meet here: the unique
            # index on lower(email) lets exactly one insert through.
            if exc.constraint_name == "idx_users_username":
                raise Problem(409, "username_taken", "This username is taken.") from None
            raise Problem(
                409, "email_taken", "An account with this email address exists."
            ) from None
        user_id: uuid.UUID = row["id"]
        await conn.execute("INSERT INTO profiles (user_id) VALUES ($1)", user_id)
        await _queue_verification(services, conn, user_id, request.email, token)
    account_metrics(services.metrics).registrations.inc()
    return Account(
        user_id=user_id,
        email=row["email"],
        username=row["username"],
        email_verified=row["email_verified"],
        created_at=row["created_at"],
    )


async def _queue_verification(
    services: Services, conn: Any, user_id: uuid.UUID, email: str, token: str
) -> None:
    await conn.execute(
        "INSERT INTO email_verifications (user_id, token_hash, expires_at)"
        " VALUES ($1, $2, now() + $3::interval)",
        user_id,
        hash_token(token),
        VERIFICATION_TTL,
    )
    # The web client's page: it confirms the token through the API and says so.
    link = f"{services.settings.effective_public_url}/verify?token={token}"
    await outbox.enqueue(
        conn,
        user_id=user_id,
        to_address=email,
        subject="Confirm your Blendtune email address",
        body=(
            "Welcome to Blendtune!\n\n"
            f"Open this link within 24 hours to confirm your email address:\n\n{link}\n\n"
            f'(API clients: POST {{"token": "{token}"}} to /auth/verify.)\n\n'
            "If you did not sign up, ignore this message.\n"
        ),
    )


async def resend_verification(services: Services, principal: Principal) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT email, email_verified FROM users WHERE id = $1 FOR UPDATE", principal.user_id
        )
        if row is None:
            raise Problem(401, "unauthenticated", "A valid session is required.")
        if row["email_verified"]:
            raise Problem(409, "already_verified", "This email address is already confirmed.")
        await _queue_verification(services, conn, principal.user_id, row["email"], new_token())


async def _token_problem(conn: Any, table: str, token_hash: bytes) -> Problem:
    """Why a single-use token was refused (unknown, used or expired)."""
    row = await conn.fetchrow(
        f"SELECT used_at, expires_at <= now() AS expired FROM {table} WHERE token_hash = $1",
        token_hash,
    )
    if row is None:
        return Problem(400, "invalid_token", "This link is not valid.")
    if row["used_at"] is not None:
        return Problem(400, "token_used", "This link was already used.")
    return Problem(400, "token_expired", "This link has expired; ask for a new one.")


async def verify_email(services: Services, token: str) -> uuid.UUID:
    token_hash = hash_token(token)
    async with services.pool.acquire() as conn, conn.transaction():
        user_id: uuid.UUID | None = await conn.fetchval(
            "UPDATE email_verifications SET used_at = now()"
            " WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()"
            " RETURNING user_id",
            token_hash,
        )
        if user_id is None:
            raise await _token_problem(conn, "email_verifications", token_hash)
        await conn.execute(
            "UPDATE users SET email_verified = true,"
            " email_verified_at = coalesce(email_verified_at, now()), updated_at = now()"
            " WHERE id = $1",
            user_id,
        )
    return user_id


# ------------------------------------------------------------------ sign-in and sessions


@dataclass(frozen=True)
class NewSession:
    token: str
    session_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime


async def login(
    services: Services,
    email: str,
    password: str,
    *,
    ip_address: str | None,
    user_agent: str | None,
) -> NewSession:
    settings = services.settings
    row = await services.pool.fetchrow(
        "SELECT id, email, password_hash, coalesce(locked_until > now(), false) AS locked"
        " FROM users WHERE lower(email) = lower($1)",
        email,
    )
    counters = account_metrics(services.metrics)
    if row is None or row["locked"]:
        # Same work and same answer as a wrong password: no way to tell what was wrong.
        await passwords.verify_dummy(password)
        counters.logins.labels("failed").inc()
        raise _invalid_credentials()
    if not await passwords.verify_password(row["password_hash"], password):
        await _record_failure(services, row["id"], row["email"])
        counters.logins.labels("failed").inc()
        raise _invalid_credentials()
    token = new_token()
    ttl = timedelta(hours=settings.session_ttl_hours)
    new_hash = (
        await passwords.hash_password(password)
        if passwords.needs_rehash(row["password_hash"])
        else None
    )
    async with services.pool.acquire() as conn, conn.transaction():
        # Concurrent failures may have locked the account while the password was checked:
        # the lock wins.
        unlocked = await conn.fetchval(
            "UPDATE users SET failed_login_attempts = 0, locked_until = NULL,"
            " password_hash = coalesce($2, password_hash)"
            " WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now()) RETURNING id",
            row["id"],
            new_hash,
        )
        if unlocked is None:
            counters.logins.labels("failed").inc()
            raise _invalid_credentials()
        session = returned(
            await conn.fetchrow(
                "INSERT INTO sessions (user_id, token_hash, ip_address, user_agent, expires_at)"
                " VALUES ($1, $2, $3::inet, $4, now() + $5::interval) RETURNING id, expires_at",
                row["id"],
                hash_token(token),
                ip_address,
                (user_agent or None) and user_agent[:USER_AGENT_MAX],
                ttl,
            )
        )
    counters.logins.labels("ok").inc()
    return NewSession(
        token=token,
        session_id=session["id"],
        user_id=row["id"],
        expires_at=session["expires_at"],
    )


async def _record_failure(services: Services, user_id: uuid.UUID, email: str) -> None:
    """Count a failed password; at the threshold, lock the account and tell its owner."""
    settings = services.settings
    async with services.pool.acquire() as conn, conn.transaction():
        # One statement, so concurrent failures each count. Reaching the threshold locks the
        # account and restarts the count for the attempts after the lock ends.
        locked_until = await conn.fetchval(
            "UPDATE users SET"
            " failed_login_attempts = CASE WHEN failed_login_attempts + 1 >= $2 THEN 0"
            "   ELSE failed_login_attempts + 1 END,"
            " locked_until = CASE WHEN failed_login_attempts + 1 >= $2"
            "   THEN now() + $3::interval ELSE locked_until END"
            " WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now())"
            " RETURNING CASE WHEN locked_until > now() THEN locked_until END",
            user_id,
            settings.lockout_threshold,
            timedelta(minutes=settings.lockout_minutes),
        )
        if locked_until is not None:
            _log.warning("account %s locked after failed sign-ins", user_id)
            account_metrics(services.metrics).lockouts.inc()
            await outbox.enqueue(
                conn,
                user_id=user_id,
                to_address=email,
                subject="Your Blendtune account is locked for a while",
                body=(
                    f"After {settings.lockout_threshold} failed sign-in attempts, your account "
                    f"is locked until {locked_until:%Y-%m-%d %H:%M} UTC.\n\n"
                    "If this was not you, someone may be guessing your password: consider "
                    "resetting it once the lock ends.\n"
                ),
            )


async def logout(services: Services, principal: Principal) -> None:
    await services.pool.execute("DELETE FROM sessions WHERE id = $1", principal.session_id)


async def list_sessions(services: Services, principal: Principal) -> list[SessionInfo]:
    rows = await services.pool.fetch(
        "SELECT id, created_at, last_activity, expires_at, host(ip_address) AS ip, user_agent"
        " FROM sessions WHERE user_id = $1 AND expires_at > now()"
        " ORDER BY last_activity DESC, id",
        principal.user_id,
    )
    return [
        SessionInfo(
            id=r["id"],
            created_at=r["created_at"],
            last_activity=r["last_activity"],
            expires_at=r["expires_at"],
            ip_address=r["ip"],
            user_agent=r["user_agent"],
            current=r["id"] == principal.session_id,
        )
        for r in rows
    ]


async def revoke_session(services: Services, principal: Principal, session_id: uuid.UUID) -> None:
    deleted = await services.pool.fetchval(
        "DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING id",
        session_id,
        principal.user_id,
    )
    if deleted is None:
        # Someone else's session looks exactly like a missing one.
        raise Problem(404, "session_not_found", "You have no such session.")


async def revoke_other_sessions(services: Services, principal: Principal) -> int:
    rows = await services.pool.fetch(
        "DELETE FROM sessions WHERE user_id = $1 AND id <> $2 RETURNING id",
        principal.user_id,
        principal.session_id,
    )
    return len(rows)


# ------------------------------------------------------------------ password reset


async def request_reset(services: Services, email: str) -> None:
    """Queue a reset link if the account exists; the caller answers the same either way."""
    token = new_token()
    async with services.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT id, email FROM users WHERE lower(email) = lower($1)", email
        )
        if row is None:
            return
        await conn.execute(
            "INSERT INTO password_resets (user_id, token_hash, expires_at)"
            " VALUES ($1, $2, now() + $3::interval)",
            row["id"],
            hash_token(token),
            RESET_TTL,
        )
        await outbox.enqueue(
            conn,
            user_id=row["id"],
            to_address=row["email"],
            subject="Reset your Blendtune password",
            body=(
                "Someone (hopefully you) asked to reset your Blendtune password.\n\n"
                "Open this link within 1 hour to choose a new one (it works once):\n\n"
                f"{services.settings.effective_public_url}/reset-password?token={token}\n\n"
                f"Your reset token, valid for 1 hour and usable once:\n\n{token}\n\n"
                f"API clients send it with the new password: POST "
                f"{services.settings.effective_public_url}"
                '/auth/password-reset/confirm {"token": "...", "password": "..."}\n\n'
                "Resetting signs you out everywhere. If you did not ask for this, ignore "
                "this message; your password stays as it is.\n"
            ),
        )


async def confirm_reset(services: Services, token: str, password: str) -> uuid.UUID:
    token_hash = hash_token(token)
    row = await services.pool.fetchrow(
        "SELECT r.user_id, u.email, u.username FROM password_resets r"
        " JOIN users u ON u.id = r.user_id"
        " WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()",
        token_hash,
    )
    if row is None:
        async with services.pool.acquire() as conn:
            raise await _token_problem(conn, "password_resets", token_hash)
    violation = passwords.policy_violation(password, email=row["email"], username=row["username"])
    if violation:
        # The token stays valid: the user can try again with a stronger password.
        raise Problem(400, "weak_password", violation)
    password_hash = await passwords.hash_password(password)
    async with services.pool.acquire() as conn, conn.transaction():
        user_id: uuid.UUID | None = await conn.fetchval(
            "UPDATE password_resets SET used_at = now()"
            " WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()"
            " RETURNING user_id",
            token_hash,
        )
        if user_id is None:  # a concurrent confirmation won
            raise await _token_problem(conn, "password_resets", token_hash)
        # The emailed token proves the address, so it also counts as verification.
        await conn.execute(
            "UPDATE users SET password_hash = $2, failed_login_attempts = 0,"
            " locked_until = NULL, email_verified = true,"
            " email_verified_at = coalesce(email_verified_at, now()), updated_at = now()"
            " WHERE id = $1",
            user_id,
            password_hash,
        )
        # Every other outstanding reset link dies with this one, and so does every session.
        await conn.execute(
            "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
            user_id,
        )
        await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
        await outbox.enqueue(
            conn,
            user_id=user_id,
            to_address=row["email"],
            subject="Your Blendtune password was changed",
            body=(
                "Your password was reset and every session was signed out.\n\n"
                "If this was not you, request a new reset link right away.\n"
            ),
        )
    return user_id


# ------------------------------------------------------------------ profile and account


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


_ME = """
SELECT u.id, u.email, u.username, u.email_verified, u.created_at,
       p.display_name, p.avatar_url, p.bio, p.country, p.timezone,
       coalesce(p.language, 'en') AS language,
       coalesce((SELECT array_agg(r.role::text ORDER BY r.role::text)
                 FROM user_roles r WHERE r.user_id = u.id), '{}') AS roles
FROM users u LEFT JOIN profiles p ON p.user_id = u.id
WHERE u.id = $1
"""


async def get_me(services: Services, user_id: uuid.UUID) -> Me:
    row = await services.pool.fetchrow(_ME, user_id)
    if row is None:
        raise Problem(401, "unauthenticated", "A valid session is required.")
    return Me(
        user_id=row["id"],
        email=row["email"],
        username=row["username"],
        email_verified=row["email_verified"],
        roles=sorted({"user", *row["roles"]}),
        created_at=row["created_at"],
        profile=Profile(
            display_name=row["display_name"],
            avatar_url=row["avatar_url"],
            bio=row["bio"],
            country=row["country"],
            timezone=row["timezone"],
            language=row["language"],
        ),
    )


_PROFILE_FIELDS = ("display_name", "avatar_url", "bio", "country", "timezone", "language")


async def update_profile(services: Services, user_id: uuid.UUID, patch: ProfilePatch) -> Me:
    changes = {
        name: getattr(patch, name)
        for name in _PROFILE_FIELDS
        if getattr(patch, name) is not msgspec.UNSET
    }
    zone = changes.get("timezone")
    if zone is not None and zone not in _time_zones():
        raise Problem(400, "invalid_timezone", f"{zone!r} is not an IANA time zone name.")
    if changes:
        names = list(changes)
        # Column names come from the fixed tuple above, never from the request.
        columns = ", ".join(names)
        values = ", ".join(f"${i + 2}" for i in range(len(names)))
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names)
        await services.pool.execute(
            f"INSERT INTO profiles (user_id, {columns}) VALUES ($1, {values})"
            f" ON CONFLICT (user_id) DO UPDATE SET {updates}, updated_at = now()",
            user_id,
            *changes.values(),
        )
    return await get_me(services, user_id)


async def change_password(services: Services, principal: Principal, current: str, new: str) -> None:
    row = await services.pool.fetchrow(
        "SELECT email, username, password_hash FROM users WHERE id = $1", principal.user_id
    )
    if row is None:
        raise Problem(401, "unauthenticated", "A valid session is required.")
    if not await passwords.verify_password(row["password_hash"], current):
        raise Problem(403, "wrong_password", "The current password is wrong.")
    violation = passwords.policy_violation(new, email=row["email"], username=row["username"])
    if violation:
        raise Problem(400, "weak_password", violation)
    password_hash = await passwords.hash_password(new)
    async with services.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            principal.user_id,
            password_hash,
        )
        # Whoever else holds a session (or a reset link) loses it; this session stays.
        await conn.execute(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2",
            principal.user_id,
            principal.session_id,
        )
        await conn.execute(
            "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
            principal.user_id,
        )
        await outbox.enqueue(
            conn,
            user_id=principal.user_id,
            to_address=row["email"],
            subject="Your Blendtune password was changed",
            body=(
                "Your password was changed and your other sessions were signed out.\n\n"
                "If this was not you, reset your password right away.\n"
            ),
        )


async def delete_account(services: Services, principal: Principal, password: str) -> None:
    password_hash = await services.pool.fetchval(
        "SELECT password_hash FROM users WHERE id = $1", principal.user_id
    )
    if password_hash is None:
        raise Problem(401, "unauthenticated", "A valid session is required.")
    if not await passwords.verify_password(password_hash, password):
        raise Problem(403, "wrong_password", "The password is wrong.")
    # Every table holding something the user owns references users with ON DELETE CASCADE
    # (migrations/schema_0001.sql); references to their actions (granted_by, reviewed_by,
    # added_by) become NULL.
    await services.pool.execute("DELETE FROM users WHERE id = $1", principal.user_id)


# ------------------------------------------------------------------ roles


async def get_roles(services: Services, user_id: uuid.UUID) -> UserRoles:
    row = await services.pool.fetchrow(
        "SELECT u.id, coalesce((SELECT array_agg(r.role::text) FROM user_roles r"
        " WHERE r.user_id = u.id), '{}') AS roles FROM users u WHERE u.id = $1",
        user_id,
    )
    if row is None:
        raise Problem(404, "user_not_found", "There is no such user.")
    return UserRoles(user_id=row["id"], roles=sorted({"user", *row["roles"]}))


def _refuse_implicit(role: str) -> None:
    if role == "user":
        raise Problem(400, "role_implicit", "Every account has the 'user' role.")


async def grant_role(
    services: Services, admin: Principal, user_id: uuid.UUID, role: str
) -> UserRoles:
    _refuse_implicit(role)
    try:
        await services.pool.execute(
            "INSERT INTO user_roles (user_id, role, granted_by) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id, role) DO NOTHING",
            user_id,
            role,
            admin.user_id,
        )
    except asyncpg.ForeignKeyViolationError:
        raise Problem(404, "user_not_found", "There is no such user.") from None
    return await get_roles(services, user_id)


async def revoke_role(services: Services, user_id: uuid.UUID, role: str) -> UserRoles:
    _refuse_implicit(role)
    async with services.pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT true FROM users WHERE id = $1", user_id):
            raise Problem(404, "user_not_found", "There is no such user.")
        if role == "admin":
            # Serialise admin revocations so two admins cannot remove each other at once.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('blendtune:admins'))")
            admins = await conn.fetch("SELECT user_id FROM user_roles WHERE role = 'admin'")
            if [r["user_id"] for r in admins] == [user_id]:
                raise Problem(409, "last_admin", "The last admin cannot lose the admin role.")
        await conn.execute("DELETE FROM user_roles WHERE user_id = $1 AND role = $2", user_id, role)
    return await get_roles(services, user_id)
