"""Wire schemas of the accounts API: every request and response body is a msgspec Struct.

Constraints live in ``msgspec.Meta`` so a malformed body is refused (400 ``invalid_request``)
before a handler runs; the few rules a pattern cannot say (password strength, IANA time
zones) are checked in the service and answer 400 with their own ``code``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

# Deliberately loose: one "@", no whitespace, a dot in the domain. Whether the address works is
# what the verification email proves.
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="An email address; unique regardless of case.",
        examples=["ada@example.com"],
    ),
]
Username = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="3-32 letters, digits, '_', '.', '-'; unique regardless of case.",
        examples=["ada_l"],
    ),
]
# New passwords: the full policy (docs/accounts.md) is checked in passwords.py; the schema only
# bounds the size so no one makes the server hash a megabyte.
NewPassword = Annotated[
    str,
    msgspec.Meta(
        min_length=10,
        max_length=256,
        description="At least 10 characters; see docs/accounts.md for the password policy.",
    ),
]
# Existing passwords are checked, never judged: any non-empty string up to the size bound.
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# Tokens are 43 URL-safe characters (256 bits); the bounds only reject obvious garbage.
Token = Annotated[
    str,
    msgspec.Meta(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$"),
]
Role = Literal["user", "artist", "admin", "moderator"]

DisplayName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$",
    ),
]
AvatarUrl = Annotated[
    str,
    msgspec.Meta(
        max_length=500,
        pattern=r"^https?://[^\s/?#]+[^\s]*$",
        description="An absolute http(s) URL.",
    ),
]
Bio = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
Country = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2 code, upper case.",
        examples=["FR"],
    ),
]
TimeZone = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="An IANA time zone name.",
        examples=["Europe/Paris"],
    ),
]
Language = Annotated[
    str,
    msgspec.Meta(
        max_length=10,
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$",
        description="A BCP 47 language tag (language[-region]).",
        examples=["en", "pt-BR"],
    ),
]


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: NewPassword
    username: Username


class Account(msgspec.Struct):
    """A user as the owner sees it."""

    user_id: uuid.UUID
    email: str
    username: str
    email_verified: bool
    created_at: datetime


class VerifyRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: Token


class Verified(msgspec.Struct):
    user_id: uuid.UUID
    email_verified: bool


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password


class LoginResponse(msgspec.Struct):
    """The session token is also set as the HttpOnly ``bt_session`` cookie."""

    token: str
    session_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime


class SessionInfo(msgspec.Struct):
    id: uuid.UUID
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    current: bool


class ResetRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email


class Accepted(msgspec.Struct):
    detail: str


class ResetConfirm(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    password: NewPassword


class Profile(msgspec.Struct):
    display_name: str | None
    avatar_url: str | None
    bio: str | None
    country: str | None
    timezone: str | None
    language: str


class Me(msgspec.Struct):
    user_id: uuid.UUID
    email: str
    username: str
    email_verified: bool
    roles: list[str]
    created_at: datetime
    profile: Profile


class ProfilePatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields present change; ``null`` clears a field (``language`` cannot be null)."""

    display_name: DisplayName | msgspec.UnsetType | None = msgspec.UNSET
    avatar_url: AvatarUrl | msgspec.UnsetType | None = msgspec.UNSET
    bio: Bio | msgspec.UnsetType | None = msgspec.UNSET
    country: Country | msgspec.UnsetType | None = msgspec.UNSET
    timezone: TimeZone | msgspec.UnsetType | None = msgspec.UNSET
    language: Language | msgspec.UnsetType = msgspec.UNSET


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: NewPassword


class DeleteAccount(msgspec.Struct, forbid_unknown_fields=True):
    password: Password


class UserRoles(msgspec.Struct):
    user_id: uuid.UUID
    roles: list[str]
