"""The ``blendtune`` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import NoReturn

import click

from server.settings import Settings, SettingsError, env_name, load_settings


def _fail(message: str) -> NoReturn:
    click.echo(f"blendtune: {message}", err=True)
    sys.exit(2)


def _settings(flags: Mapping[str, str | None] | None = None) -> Settings:
    """Settings from the environment, command-line flags taking precedence. A bad value stops
    the command with one line naming what the user typed: the flag, or else the variable."""
    given = {field: value for field, value in (flags or {}).items() if value is not None}
    environ = {**os.environ, **{env_name(field): value for field, value in given.items()}}
    try:
        return load_settings(environ)
    except SettingsError as exc:
        if exc.field in given:
            _fail(f"{_flag(exc.field)} {given[exc.field]!r} is invalid: {exc.reason}")
        _fail(str(exc))


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _check_address(settings: Settings, flags: Mapping[str, str | None]) -> None:
    """Fail now, before any embedded service starts, if the server could not listen."""
    if settings.port == 0:
        return
    origin = ", ".join(
        f"{_flag(field)} {value}" if flags.get(field) is not None else f"{env_name(field)}={value}"
        for field, value in (("host", settings.host), ("port", settings.port))
        if flags.get(field) is not None or env_name(field) in os.environ
    )
    where = f"{settings.host}:{settings.port}" + (f" ({origin})" if origin else "")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        _fail(f"cannot listen on {where}: {exc.strerror}")
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn does: a port in TIME_WAIT is free, one that something listens on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            hint = "" if flags.get("port") else "; choose another with --port"
            _fail(f"cannot listen on {where}: {exc.strerror or exc}{hint}")


def _exit_quietly(signum: int, frame: object) -> None:
    sys.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Blendtune: a real-time collaborative music server.

    Configuration comes from BLENDTUNE_* environment variables (see the README).
    """


# --port and --workers are validated with the settings (not by click), so that a bad value
# is one line naming the flag, checked before anything starts.
@main.command()
@click.option("--host", help="Address to listen on [default: BLENDTUNE_HOST or 127.0.0.1].")
@click.option(
    "--port", metavar="INTEGER", help="Port to listen on [default: BLENDTUNE_PORT or 8000]."
)
@click.option(
    "--workers",
    metavar="INTEGER",
    help="Worker processes sharing the port [default: BLENDTUNE_WORKERS or 1].",
)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Apply pending migrations before serving. With --no-migrate, an out-of-date schema "
    "stops start-up.",
)
def serve(host: str | None, port: str | None, workers: str | None, migrate: bool) -> None:
    """Serve the REST API and WebSocket rooms.

    With no BLENDTUNE_DATABASE_URL / BLENDTUNE_REDIS_URL, starts an embedded PostgreSQL and
    Redis under BLENDTUNE_DATA_DIR (kept between runs) and stops them on exit.
    """
    import asyncpg
    import uvicorn

    from db import migrate as migrations
    from server import logs
    from server.embedded import embedded_services, missing_extra, with_secrets

    flags = {"host": host, "port": port, "workers": workers}
    settings = _settings(flags)
    _check_address(settings, flags)
    if problem := missing_extra(settings):
        _fail(problem)
    logs.configure(settings.log_level, settings.log_format)
    with embedded_services(settings) as settings:
        settings = with_secrets(settings)
        assert settings.database_url is not None
        try:
            if migrate:
                asyncio.run(migrations.forwards(settings.database_url))
            else:
                todo = asyncio.run(migrations.pending(settings.database_url))
                if todo:
                    _fail(
                        f"the database schema is out of date ({len(todo)} migration(s) "
                        "pending): run `blendtune migrate`"
                    )
        except (OSError, asyncpg.PostgresError) as exc:
            _fail(f"cannot reach the database: {exc}")
        # Workers build their settings from the environment: hand them the resolved values.
        for field in Settings.__struct_fields__:
            value = getattr(settings, field)
            if value is not None:
                os.environ[env_name(field)] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal with
        # the previous handler in place: make that an orderly exit, so the `with` blocks
        # above stop the embedded services.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _exit_quietly)
        uvicorn.run(
            "server.app:create_server",
            factory=True,
            interface="asgi3",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            ws="websockets-sansio",
            ws_max_size=settings.ws_max_frame_bytes,
            ws_per_message_deflate=settings.ws_compression,
            # Rooms run their own heartbeats (see docs/protocol.md).
            ws_ping_interval=None,
            lifespan="on",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        )


@main.command()
@click.option("--rollback", is_flag=True, help="Roll every migration back (empties the schema).")
def migrate(rollback: bool) -> None:
    """Apply pending migrations (or roll them all back) on the configured database."""
    from db import migrate as migrations
    from server import logs
    from server.embedded import embedded_services, missing_extra

    settings = _settings()
    if problem := missing_extra(settings):
        _fail(problem)
    # As serve does: say where the data directory is, and whether it was just created.
    logs.configure(settings.log_level, settings.log_format)
    with embedded_services(settings) as settings:
        assert settings.database_url is not None
        try:
            if rollback:
                done = asyncio.run(migrations.backwards(settings.database_url))
                verb = "rolled back"
            else:
                done = asyncio.run(migrations.forwards(settings.database_url))
                verb = "applied"
        except Exception as exc:
            _fail(f"migration failed: {exc}")
    click.echo(f"{verb} {len(done)} migration(s)" + "".join(f"\n  {m}" for m in done))


def _register_loadtest() -> None:
    try:
        from loadtest.cli import loadtest, loadtest_seed
    except ImportError:
        return  # a server image without the load tester (see the Dockerfile)

    main.add_command(loadtest)
    main.add_command(loadtest_seed)


_register_loadtest()


def _register_dsp() -> None:
    from dsp.cli import analyze, render

    main.add_command(analyze)
    main.add_command(render)


_register_dsp()


def _register_accounts() -> None:
    from server.accounts.cli import grant_role

    main.add_command(grant_role)


_register_accounts()
