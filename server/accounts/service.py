"""Account operations: registration, verification, sign-in, sessions, resets, profile, roles.

The rules and the transactions; the statements are ``repository.py``'s. Every operation is
one or two short transactions, each of which completes or writes nothing (a password is
hashed or checked outside them: it takes a while). Handlers in controller.py do the HTTP part.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import asyncpg
import msgspec

from db.pool import Connection
from server.accounts import outbox, passwords
from server.accounts import repository as repo
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
            account = await repo.insert_user(conn, request.email, request.username, password_hash)
        except asyncpg.UniqueViolationError as exc:
            # Two registrations racing for one address (in any case) meet here: the unique
            # index on lower(email) lets exactly one insert through.
            if exc.constraint_name == "idx_users_username":
                raise Problem(409, "username_taken", "This username is taken.") from None
            raise Problem(
                409, "email_taken", "An account with this email address exists."
            ) from None
        await _queue_verification(services, conn, account.user_id, request.email, token)
    account_metrics(services.metrics).registrations.inc()
    return account


async def _queue_verification(
    services: Services, conn: Connection, user_id: uuid.UUID, email: str, token: str
) -> None:
    await repo.insert_token(conn, "email_verifications", user_id, token, VERIFICATION_TTL)
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


def _unauthenticated() -> Problem:
    return Problem(401, "unauthenticated", "A valid session is required.")


async def resend_verification(services: Services, principal: Principal) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.credentials(conn, principal.user_id, lock=True)
        if found is None:
            raise _unauthenticated()
        if found.email_verified:
            raise Problem(409, "already_verified", "This email address is already confirmed.")
        await _queue_verification(services, conn, principal.user_id, found.email, new_token())


async def _token_problem(conn: Connection, table: repo.TokenTable, token_hash: bytes) -> Problem:
    """Why a single-use token was refused (unknown, used or expired)."""
    state = await repo.token_state(conn, table, token_hash)
    if state is None:
        return Problem(400, "invalid_token", "This link is not valid.")
    if state.used:
        return Problem(400, "token_used", "This link was already used.")
    return Problem(400, "token_expired", "This link has expired; ask for a new one.")


async def verify_email(services: Services, token: str) -> uuid.UUID:
    token_hash = hash_token(token)
    async with services.pool.acquire() as conn, conn.transaction():
        user_id = await repo.use_token(conn, "email_verifications", token_hash)
        if user_id is None:
            raise await _token_problem(conn, "email_verifications", token_hash)
        await repo.mark_verified(conn, user_id)
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
    async with services.pool.acquire() as conn:
        found = await repo.credentials_by_email(conn, email)
    counters = account_metrics(services.metrics)
    if found is None or found.locked:
        # Same work and same answer as a wrong password: no way to tell what was wrong.
        await passwords.verify_dummy(password)
        counters.logins.labels("failed").inc()
        raise _invalid_credentials()
    if not await passwords.verify_password(found.password_hash, password):
        await _record_failure(services, found.id, found.email)
        counters.logins.labels("failed").inc()
        raise _invalid_credentials()
    token = new_token()
    ttl = timedelta(hours=settings.session_ttl_hours)
    new_hash = (
        await passwords.hash_password(password)
        if passwords.needs_rehash(found.password_hash)
        else None
    )
    async with services.pool.acquire() as conn, conn.transaction():
        # Concurrent failures may have locked the account while the password was checked:
        # the lock wins.
        if not await repo.clear_failures(conn, found.id, new_hash):
            counters.logins.labels("failed").inc()
            raise _invalid_credentials()
        session = await repo.insert_session(conn, found.id, token, ttl, ip_address, user_agent)
    counters.logins.labels("ok").inc()
    return NewSession(
        token=token, session_id=session.id, user_id=found.id, expires_at=session.expires_at
    )


async def _record_failure(services: Services, user_id: uuid.UUID, email: str) -> None:
    """Count a failed password; at the threshold, lock the account and tell its owner."""
    settings = services.settings
    async with services.pool.acquire() as conn, conn.transaction():
        locked_until = await repo.count_failure(
            conn, user_id, settings.lockout_threshold, timedelta(minutes=settings.lockout_minutes)
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
    async with services.pool.acquire() as conn:
        await repo.delete_session(conn, principal.session_id)


async def list_sessions(services: Services, principal: Principal) -> list[SessionInfo]:
    async with services.pool.acquire() as conn:
        return await repo.live_sessions(conn, principal.user_id, principal.session_id)


async def revoke_session(services: Services, principal: Principal, session_id: uuid.UUID) -> None:
    async with services.pool.acquire() as conn:
        if not await repo.delete_session(conn, session_id, principal.user_id):
            # Someone else's session looks exactly like a missing one.
            raise Problem(404, "session_not_found", "You have no such session.")


async def revoke_other_sessions(services: Services, principal: Principal) -> int:
    async with services.pool.acquire() as conn:
        return await repo.delete_sessions(conn, principal.user_id, except_id=principal.session_id)


# ------------------------------------------------------------------ password reset


async def request_reset(services: Services, email: str) -> None:
    """Queue a reset link if the account exists; the caller answers the same either way."""
    token = new_token()
    async with services.pool.acquire() as conn, conn.transaction():
        found = await repo.credentials_by_email(conn, email)
        if found is None:
            return
        await repo.insert_token(conn, "password_resets", found.id, token, RESET_TTL)
        await outbox.enqueue(
            conn,
            user_id=found.id,
            to_address=found.email,
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
    async with services.pool.acquire() as conn:
        holder = await repo.reset_holder(conn, token_hash)
        if holder is None:
            raise await _token_problem(conn, "password_resets", token_hash)
    violation = passwords.policy_violation(password, email=holder.email, username=holder.username)
    if violation:
        # The token stays valid: the user can try again with a stronger password.
        raise Problem(400, "weak_password", violation)
    password_hash = await passwords.hash_password(password)
    async with services.pool.acquire() as conn, conn.transaction():
        user_id = await repo.use_token(conn, "password_resets", token_hash)
        if user_id is None:  # a concurrent confirmation won
            raise await _token_problem(conn, "password_resets", token_hash)
        # The emailed token proves the address, so it also counts as verification.
        await repo.set_password(conn, user_id, password_hash, verified=True)
        # Every other outstanding reset link dies with this one, and so does every session.
        await repo.spend_resets(conn, user_id)
        await repo.delete_sessions(conn, user_id)
        await outbox.enqueue(
            conn,
            user_id=user_id,
            to_address=holder.email,
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


async def get_me(services: Services, user_id: uuid.UUID) -> Me:
    async with services.pool.acquire() as conn:
        found = await repo.me(conn, user_id)
    if found is None:
        raise _unauthenticated()
    return Me(
        user_id=found.user_id,
        email=found.email,
        username=found.username,
        email_verified=found.email_verified,
        roles=sorted({"user", *found.roles}),
        created_at=found.created_at,
        profile=msgspec.convert(found, Profile, from_attributes=True),
    )


async def update_profile(services: Services, user_id: uuid.UUID, patch: ProfilePatch) -> Me:
    changes = repo.profile_changes(patch)
    zone = changes.get("timezone")
    if zone is not None and zone not in _time_zones():
        raise Problem(400, "invalid_timezone", f"{zone!r} is not an IANA time zone name.")
    async with services.pool.acquire() as conn:
        await repo.upsert_profile(conn, user_id, changes)
    return await get_me(services, user_id)


async def change_password(services: Services, principal: Principal, current: str, new: str) -> None:
    async with services.pool.acquire() as conn:
        found = await repo.credentials(conn, principal.user_id)
    if found is None:
        raise _unauthenticated()
    if not await passwords.verify_password(found.password_hash, current):
        raise Problem(403, "wrong_password", "The current password is wrong.")
    violation = passwords.policy_violation(new, email=found.email, username=found.username)
    if violation:
        raise Problem(400, "weak_password", violation)
    password_hash = await passwords.hash_password(new)
    async with services.pool.acquire() as conn, conn.transaction():
        await repo.set_password(conn, principal.user_id, password_hash)
        # Whoever else holds a session (or a reset link) loses it; this session stays.
        await repo.delete_sessions(conn, principal.user_id, except_id=principal.session_id)
        await repo.spend_resets(conn, principal.user_id)
        await outbox.enqueue(
            conn,
            user_id=principal.user_id,
            to_address=found.email,
            subject="Your Blendtune password was changed",
            body=(
                "Your password was changed and your other sessions were signed out.\n\n"
                "If this was not you, reset your password right away.\n"
            ),
        )


async def delete_account(services: Services, principal: Principal, password: str) -> None:
    async with services.pool.acquire() as conn:
        found = await repo.credentials(conn, principal.user_id)
    if found is None:
        raise _unauthenticated()
    if not await passwords.verify_password(found.password_hash, password):
        raise Problem(403, "wrong_password", "The password is wrong.")
    async with services.pool.acquire() as conn:
        await repo.delete_user(conn, principal.user_id)


# ------------------------------------------------------------------ roles


def _user_not_found() -> Problem:
    return Problem(404, "user_not_found", "There is no such user.")


async def get_roles(services: Services, user_id: uuid.UUID) -> UserRoles:
    async with services.pool.acquire() as conn:
        granted = await repo.roles(conn, user_id)
    if granted is None:
        raise _user_not_found()
    return UserRoles(user_id=user_id, roles=sorted({"user", *granted}))


def _refuse_implicit(role: str) -> None:
    if role == "user":
        raise Problem(400, "role_implicit", "Every account has the 'user' role.")


async def grant_role(
    services: Services, admin: Principal, user_id: uuid.UUID, role: str
) -> UserRoles:
    _refuse_implicit(role)
    try:
        async with services.pool.acquire() as conn:
            await repo.grant(conn, user_id, role, admin.user_id)
    except asyncpg.ForeignKeyViolationError:
        raise _user_not_found() from None
    return await get_roles(services, user_id)


async def revoke_role(services: Services, user_id: uuid.UUID, role: str) -> UserRoles:
    _refuse_implicit(role)
    async with services.pool.acquire() as conn, conn.transaction():
        if not await repo.user_exists(conn, user_id):
            raise _user_not_found()
        if role == "admin" and await repo.admins_locked(conn) == [user_id]:
            raise Problem(409, "last_admin", "The last admin cannot lose the admin role.")
        await repo.revoke(conn, user_id, role)
    return await get_roles(services, user_id)
