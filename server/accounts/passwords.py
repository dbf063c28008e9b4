"""Password hashing (argon2id) and the password policy.

Hashing costs about 0.1 s of CPU by design, so it runs in a worker thread (argon2 releases the
GIL) and never blocks the event loop. ``verify_dummy`` spends the same time for logins naming
an unknown email, so the answer's timing does not tell whether the account exists.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 256
MIN_DISTINCT = 5

# The most common passwords of the usual breach lists that are 10+ characters long; the
# length rule already excludes the shorter ones.
COMMON = frozenset(
    {
        "1234567890",
        "12345678910",
        "123456789a",
        "0987654321",
        "1qaz2wsx3edc",
        "abcdefghij",
        "asdfghjkl;",
        "iloveyou12",
        "letmein123",
        "password12",
        "password123",
        "password1234",
        "password!1",
        "passw0rd123",
        "qwerty1234",
        "qwerty12345",
        "qwerty123456",
        "qwertyuiop",
        "qwertyuiop[]",
        "1q2w3e4r5t",
        "1q2w3e4r5t6y",
        "zaq12wsxcde3",
        "welcome123",
        "administrator",
        "changeme123",
        "football123",
        "baseball123",
        "superman123",
        "blendtune123",
        "blendtune2026",
    }
)


@functools.cache
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults follow RFC 9106's "second recommended" profile: argon2id,
    # t=3, m=64 MiB, p=4.
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    return _hasher().hash("not a password anyone has: dummy for timing")


def policy_violation(password: str, *, email: str = "", username: str = "") -> str | None:
    """Why ``password`` is too weak, or None if it meets the policy."""
    if len(password) < MIN_LENGTH:
        return f"The password needs at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"The password may have at most {MAX_LENGTH} characters."
    if len(set(password)) < MIN_DISTINCT:
        return f"The password needs at least {MIN_DISTINCT} different characters."
    lowered = password.lower()
    if lowered in COMMON:
        return "This password is too common."
    for part in (username.lower(), email.lower().partition("@")[0]):
        if len(part) >= 4 and part in lowered:
            return "The password must not contain your username or email address."
    return None


def hash_password_sync(password: str) -> str:
    return _hasher().hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash, password)


async def verify_dummy(password: str) -> None:
    """Spend the time of a real verification, for answers that must not reveal an account."""
    await asyncio.to_thread(_verify_dummy, password)


def _verify_dummy(password: str) -> None:
    # _dummy_hash() is computed here, in the worker thread, on first use.
    _verify(_dummy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
