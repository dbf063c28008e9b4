"""The Redis client. Every key and channel carries the configured prefix."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis


def create_redis(url: str, *, max_connections: int = 64) -> Redis:
    # A BlockingConnectionPool waits for a free connection instead of raising
    # MaxConnectionsError under load (redis-py's default pool raises).
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=15,
    )
    return Redis(connection_pool=pool)


class Keys:
    """Builds prefixed Redis key and channel names."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)
