"""What the rooms core needs from the application, and nothing more.

``rooms`` does not import ``server``: the app builds a ``RoomsContext`` (``server/app.py``)
from its own services and settings. Room kinds get the narrower ``KindContext`` (a pool,
Redis and key names), which ``server.services.Services`` satisfies as it is, so domain code
can call ``rooms.api`` with its services.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

# One Redis or a Redis Cluster (the app picks by its URL: server/redis_client.py). Both have
# the commands the rooms core uses; pub/sub differs (``rooms.sharded``).
RedisClient = Redis | RedisCluster


class KindContext(Protocol):
    """What a room kind's ``exists`` and ``membership`` may use."""

    @property
    def pool(self) -> Any:
        """The asyncpg pool."""

    @property
    def redis(self) -> RedisClient: ...

    @property
    def keys(self) -> Callable[..., str]:
        """Prefixed Redis key and channel names: ``keys("room", id)``."""


class LogSettings(Protocol):
    """The settings ``rooms.api`` reads when it writes a batch."""

    @property
    def room_snapshot_every(self) -> int: ...

    @property
    def room_log_retention(self) -> int: ...

    @property
    def room_op_id_hours(self) -> float: ...


class ApiContext(KindContext, Protocol):
    """What ``rooms.api`` needs: a kind's context and the op log's settings."""

    @property
    def settings(self) -> LogSettings: ...


class RoomSettings(msgspec.Struct, frozen=True):
    """The settings the rooms core reads (meanings and defaults: ``server.settings`` and the
    README's configuration table)."""

    redis_url: str
    public_url: str
    ws_max_frame_bytes: int
    ws_ops_per_second: int
    ws_room_max_members: int
    ws_send_queue_max: int
    ws_max_pending_batches: int
    ws_auth_timeout_seconds: float
    ws_heartbeat_seconds: float
    ws_idle_timeout_seconds: float
    ws_presence_max_bytes: int
    room_snapshot_every: int
    room_log_retention: int
    room_op_id_hours: float
    presence_ttl_seconds: float
    room_commit_timeout_seconds: float
    room_publish_queue_max: int
    room_kinds: str
    shutdown_grace_seconds: float

    @classmethod
    def pick(cls, source: Any, **overrides: Any) -> RoomSettings:
        """The fields of this Struct read by name from the app's settings object."""
        values = {
            name: getattr(source, name) for name in cls.__struct_fields__ if hasattr(source, name)
        }
        return cls(**{**values, **overrides})


# A session token (from the hello, else from the upgrade request's headers) to a user id;
# None when it is not a valid session. Raises when the session store cannot be reached.
Authenticate = Callable[[str | None, Sequence[tuple[bytes, bytes]]], Awaitable[uuid.UUID | None]]


@dataclass
class RoomsContext:
    """Everything the hub uses from outside ``rooms``."""

    settings: RoomSettings
    kinds: KindContext  # passed to the room kinds; also where the pool and Redis come from
    registry: CollectorRegistry  # metrics
    authenticate: Authenticate

    @property
    def pool(self) -> Any:
        return self.kinds.pool

    @property
    def redis(self) -> RedisClient:
        return self.kinds.redis

    def keys(self, *parts: str) -> str:
        return self.kinds.keys(*parts)
