"""Settings: one msgspec Struct, loaded from ``BLENDTUNE_*`` environment variables.

Every field is documented in the README with its default. Loading is pure: it reads the
mapping it is given and either returns a ``Settings`` or raises ``SettingsError`` naming the
variable at fault, which the CLI prints without a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from server.redis_client import is_cluster_url, parse_cluster_url

PREFIX = "BLENDTUNE_"

Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


# Where a test may stop a process mid-transaction (server/faults.py).
FaultPoint = Literal["upload.stored", "upload.failed"]


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Services. None means "start the embedded one under data_dir".
    database_url: str | None = None
    # One Redis (redis://, rediss://, unix://) or a Redis Cluster (redis+cluster://host:port,...:
    # server/redis_client.py).
    redis_url: str | None = None
    # Every Redis key and pub/sub channel starts with this, so several deployments (or test
    # runs) can share one Redis.
    redis_prefix: str = "bt:"
    data_dir: str = ".data"
    # Where uploads and rendered audio live; empty means <data_dir>/storage.
    storage_dir: str = ""
    host: str = "127.0.0.1"
    port: Port = 8000
    workers: Positive = 1
    # Base URL used in links sent by email; empty means http://<host>:<port>.
    public_url: str = ""
    # Secrets. Empty means generated once and kept in <data_dir>/secrets.json (development).
    secret_key: str = ""
    # 32 bytes, URL-safe base64: AES-256-GCM key for provider tokens at rest.
    encryption_key: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    # Email: with no SMTP host, the outbox logs messages instead of sending them.
    smtp_host: str = ""
    smtp_port: Port = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "Blendtune <no-reply@blendtune.local>"
    smtp_starttls: bool = True
    # Accounts.
    session_ttl_hours: Positive = 24 * 7
    lockout_threshold: Positive = 5
    lockout_minutes: Positive = 15
    # Requests per minute per client address and per account for login/register/reset.
    auth_rate_limit_per_minute: Positive = 20
    # REST limits.
    max_request_bytes: Positive = 1024 * 1024
    max_upload_bytes: Positive = 100 * 1024 * 1024
    # Uploads: received files wait here until the worker has moved them into storage;
    # empty means <data_dir>/incoming. Processes sharing it move each other's files.
    upload_dir: str = ""
    upload_poll_seconds: PositiveFloat = 1.0
    # A job (or an analysis) untouched this long is taken over by another worker: its
    # process died mid-move.
    upload_lease_seconds: PositiveFloat = 300.0
    upload_retry_base_seconds: PositiveFloat = 2.0
    upload_retry_max_seconds: PositiveFloat = 600.0
    upload_max_attempts: Positive = 10
    # Test-only fault injection for the storage backend: "fail" (every write raises) or
    # "hang" (every write blocks); see docs/catalog.md.
    storage_fault: Literal["", "fail", "hang"] = ""
    # Test-only: stop for good at this pause point, in the middle of a transaction, so that a
    # test can kill the process there (server/faults.py lists the points).
    fault_pause: Literal["", FaultPoint] = ""
    # Database pool: connections per process, and how long a request waits for one before
    # it is answered 503 (never forever: see db/pool.py).
    db_pool_size: Annotated[int, msgspec.Meta(ge=2, le=1000)] = 10
    db_acquire_timeout_seconds: PositiveFloat = 5.0
    # Rooms.
    ws_max_frame_bytes: Positive = 64 * 1024
    ws_ops_per_second: Positive = 50
    ws_room_max_members: Positive = 200
    ws_send_queue_max: Positive = 512
    # Op batches a connection may have sent and not yet had answered; beyond: too_many_pending.
    ws_max_pending_batches: Positive = 64
    ws_auth_timeout_seconds: PositiveFloat = 5.0
    ws_heartbeat_seconds: PositiveFloat = 20.0
    ws_idle_timeout_seconds: PositiveFloat = 60.0
    room_snapshot_every: Positive = 200
    room_log_retention: Positive = 1000
    # Op ids stay idempotent (and batches resumable) at least this long: the log keeps a
    # batch while it is younger than this or within room_log_retention of the snapshot.
    room_op_id_hours: Annotated[float, msgspec.Meta(ge=0)] = 24.0
    # A process's heartbeat key lives this long: a killed process's members leave every
    # roster within it plus a quarter of it (3.75 s).
    presence_ttl_seconds: Positive = 3
    # Bounds under a stalled PostgreSQL or Redis: one group commit's deadline (its batches
    # are answered unavailable), and Redis commands queued before fan-out counts as down.
    room_commit_timeout_seconds: PositiveFloat = 10.0
    room_publish_queue_max: Positive = 10000
    # Extra room kinds by import path, comma-separated (module:attribute), e.g. for tests.
    room_kinds: str = ""
    # Largest presence state (JSON bytes) a member may publish.
    ws_presence_max_bytes: Positive = 1024
    # permessage-deflate on room sockets: saves bandwidth, costs ~35 KiB per connection.
    ws_compression: bool = False
    shutdown_grace_seconds: PositiveFloat = 10.0
    # Blends: share codes live this many days; failed joins by code allowed per minute per
    # client address and per user; woven playlists are refreshed this often; the generation
    # job looks for pending blends this often (joins also wake it at once).
    blend_share_code_days: Positive = 7
    share_code_failures_per_minute: Positive = 10
    blend_regenerate_hours: PositiveFloat = 24.0
    blend_scan_seconds: PositiveFloat = 30.0
    # Mashups: share-code lifetime; previews: longest window, format, render threads, cache
    # of decoded and stretched audio, and renders in flight per process before 503.
    mashup_share_code_days: Positive = 7
    mashup_preview_max_seconds: PositiveFloat = 30.0
    mashup_preview_format: Literal["mp3", "ogg", "flac", "wav"] = "mp3"
    mashup_preview_workers: Positive = 2
    mashup_preview_cache_mb: Positive = 256
    mashup_preview_max_pending: Positive = 8
    # Mashup generation: how often idle processes look for queued jobs, how long a job may go
    # untouched before another process takes it over (its process died), and how many times a
    # job is taken over before it is failed (a job that kills its process must not loop).
    mashup_generation_poll_seconds: PositiveFloat = 1.0
    mashup_generation_lease_seconds: PositiveFloat = 60.0
    mashup_generation_max_attempts: Positive = 3

    @property
    def effective_storage_dir(self) -> str:
        return self.storage_dir or os.path.join(self.data_dir, "storage")

    @property
    def effective_upload_dir(self) -> str:
        return self.upload_dir or os.path.join(self.data_dir, "incoming")

    @property
    def effective_public_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


class SettingsError(Exception):
    """A configuration value is missing or malformed; the message names the variable.

    ``field`` and ``reason`` say which setting and why, so that a caller that took the value
    from somewhere else (a command-line flag) can name that instead.
    """

    def __init__(self, message: str, *, field: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    fields = set(Settings.__struct_fields__)
    raw: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(PREFIX):
            continue
        field = name[len(PREFIX) :].lower()
        if field not in fields:
            raise SettingsError(f"{name} is not a known setting (see the README for the list)")
        raw[field] = value
    try:
        # strict=False lets msgspec parse "8000" as an int and "true" as a bool.
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise _describe(str(exc), raw) from None
    if settings.redis_url is not None and is_cluster_url(settings.redis_url):
        try:
            parse_cluster_url(settings.redis_url)
        except ValueError as exc:
            raise SettingsError(
                f"{env_name('redis_url')}={settings.redis_url!r} is invalid: {exc}",
                field="redis_url",
                reason=str(exc),
            ) from None
    return settings


def _describe(message: str, raw: Mapping[str, str]) -> SettingsError:
    # msgspec says e.g. "Expected `int`, got `str` - at `$.port`"; name the variable instead.
    match = re.search(r" - at `\$\.(\w+)`", message)
    if match is None:
        return SettingsError(f"invalid configuration: {message}", reason=message)
    field = match.group(1)
    what = message[: match.start()]
    return SettingsError(
        f"{env_name(field)}={raw.get(field, '')!r} is invalid: {what}", field=field, reason=what
    )
