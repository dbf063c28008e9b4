"""``blendtune grant-role EMAIL ROLE [--revoke]``: how the first admin comes to exist.

Admins grant roles over REST (``PUT /users/{id}/roles/{role}``); someone has to be the first
admin, and that is an operator's job on the command line.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import click


async def change_role(database_url: str, email: str, role: str, *, revoke: bool) -> list[str]:
    """Grant (or revoke) ``role`` for the account with ``email``; returns its roles after."""
    conn = await asyncpg.connect(database_url)
    try:
        user_id = await conn.fetchval("SELECT id FROM users WHERE lower(email) = lower($1)", email)
        if user_id is None:
            raise LookupError(f"no account has the email address {email!r}")
        if revoke:
            await conn.execute(
                "DELETE FROM user_roles WHERE user_id = $1 AND role = $2", user_id, role
            )
        else:
            await conn.execute(
                "INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                user_id,
                role,
            )
        roles = await conn.fetch(
            "SELECT role::text FROM user_roles WHERE user_id = $1 ORDER BY 1", user_id
        )
        return sorted({"user", *(r["role"] for r in roles)})
    finally:
        await conn.close()


@click.command("grant-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["artist", "admin", "moderator"]))
@click.option("--revoke", is_flag=True, help="Take the role away instead.")
def grant_role(email: str, role: str, revoke: bool) -> None:
    """Grant ROLE (artist, admin, moderator) to the account with EMAIL.

    Uses the configured database (BLENDTUNE_DATABASE_URL, or the embedded one).
    """
    from server.cli import _settings
    from server.embedded import embedded_services

    with embedded_services(_settings()) as settings:
        assert settings.database_url is not None
        try:
            roles = asyncio.run(change_role(settings.database_url, email, role, revoke=revoke))
        except LookupError as exc:
            click.echo(f"blendtune: {exc}", err=True)
            sys.exit(1)
    click.echo(f"{email}: {', '.join(roles)}")
