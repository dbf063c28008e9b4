"""Accounts (seeds 001, 003, 004): users, profiles, roles, sessions, tokens and the outbox."""

from piccolo.columns import (
    UUID,
    Boolean,
    Bytea,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from db.tables._columns import pg_enum, timestamp_now, uuid_pk


class User(Table, tablename="users"):
    id = uuid_pk()
    email = Varchar(length=255)
    username = Varchar(length=100)
    password_hash = Varchar(length=255)
    artist_name = Varchar(length=255, null=True, default=None)
    email_verified = Boolean(default=False)
    email_verified_at = Timestamptz(null=True, default=None)
    failed_login_attempts = Integer(default=0)
    locked_until = Timestamptz(null=True, default=None)
    created_at = timestamp_now()
    updated_at = timestamp_now()


class Profile(Table, tablename="profiles"):
    user_id = UUID(primary_key=True)
    first_name = Varchar(length=100, null=True, default=None)
    last_name = Varchar(length=100, null=True, default=None)
    display_name = Varchar(length=100, null=True, default=None)
    bio = Text(null=True, default=None)
    avatar_url = Varchar(length=500, null=True, default=None)
    country = Varchar(length=100, null=True, default=None)
    timezone = Varchar(length=100, null=True, default=None)
    language = Varchar(length=10, default="en")
    created_at = timestamp_now()
    updated_at = timestamp_now()


class UserRole(Table, tablename="user_roles"):
    id = uuid_pk()
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    role = pg_enum("user", "artist", "admin", "moderator")
    granted_at = timestamp_now()
    granted_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)


class Session(Table, tablename="sessions"):
    id = uuid_pk()
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    token_hash = Bytea()
    ip_address = Varchar(length=45, null=True, default=None)
    user_agent = Text(null=True, default=None)
    created_at = timestamp_now()
    expires_at = Timestamptz()
    last_activity = timestamp_now()


class EmailVerification(Table, tablename="email_verifications"):
    id = uuid_pk()
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    token_hash = Bytea()
    created_at = timestamp_now()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class PasswordReset(Table, tablename="password_resets"):
    id = uuid_pk()
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    token_hash = Bytea()
    created_at = timestamp_now()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class EmailOutbox(Table, tablename="email_outbox"):
    id = uuid_pk()
    user_id = ForeignKey(User, null=True, on_delete=OnDelete.cascade)
    to_address = Varchar(length=255)
    subject = Varchar(length=255)
    body = Text()
    status = pg_enum("pending", "sent", "failed", default="pending")
    attempts = Integer(default=0)
    last_error = Text(null=True, default=None)
    created_at = timestamp_now()
    sent_at = Timestamptz(null=True, default=None)
