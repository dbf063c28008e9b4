"""The Redis client: one Redis, or a Redis Cluster. Every key and channel carries the prefix.

``BLENDTUNE_REDIS_URL`` is a redis-py URL (``redis://``, ``rediss://``, ``unix://``) for one
Redis, or ``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://``
for TLS) for a cluster: every listed node is a seed, so start-up works while any one of them is
down, and the client learns the rest of the cluster from whichever answers.

On a cluster a multi-key command or transaction must stay in one hash slot: the rooms core's
names carry hash tags (``rooms.names``), and the rate-limit counters are counted one key at a
time (``count_in_window``).
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# What ``create_redis`` returns. The two share the command methods Blendtune uses (a pipeline
# on a cluster sends each command to its slot's node and follows MOVED by itself).
from rooms.context import RedisClient

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS


class ClusterAddress(NamedTuple):
    nodes: list[tuple[str, int]]
    username: str | None
    password: str | None
    tls: bool


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterAddress:
    """The seed nodes and credentials of a ``redis+cluster://`` URL; ValueError if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in CLUSTER_SCHEMES:
        raise ValueError("a cluster URL starts with redis+cluster:// or rediss+cluster://")
    credentials, at, hosts = rest.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    # A cluster has only database 0: accept "/" or "/0" and nothing else after the hosts.
    hosts, slash, database = hosts.partition("/")
    if slash and database not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0")
    if "?" in hosts or "#" in hosts:
        raise ValueError("options in a cluster URL are not supported")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item.strip()!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    return ClusterAddress(nodes, username, password, CLUSTER_SCHEMES[scheme])


def create_redis(url: str, *, max_connections: int = 64) -> RedisClient:
    if is_cluster_url(url):
        return create_cluster(parse_cluster_url(url), max_connections=max_connections)
    # A BlockingConnectionPool waits for a free connection instead of raising
    # MaxConnectionsError under load (redis-py's default pool raises).
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=15,
        # After a network cut or a Redis restart every pooled connection is dead, and the
        # first command on each would fail although Redis is back (a pool given to ``Redis``
        # keeps its connections' retry policy, which is no retry at all). One immediate retry
        # on a fresh connection absorbs that; a Redis that is really down still fails fast.
        retry=Retry(NoBackoff(), 1),
    )
    return Redis(connection_pool=pool)


def create_cluster(address: ClusterAddress, *, max_connections: int = 64) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        username=address.username,
        password=address.password,
        ssl=address.tls,
        # Per node. The cluster client's per-node pools raise MaxConnectionsError when full
        # rather than wait (there is no blocking pool for clusters in redis-py 8), so they get
        # room for bursts of joins; idle connections cost a few KiB each on both sides.
        max_connections=max_connections * 4,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=15,
        # (reinitialize_steps stays at its default: a MOVED answer names the slot's owner, and
        # following it beats re-reading the whole map from a node whose view may lag behind.)
    )


class Keys:
    """Builds prefixed Redis key and channel names."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)


# Starts a key's window (SET NX EX) and counts one (INCR keeps the expiry the SET gave), in
# one step per key: atomic without a transaction over several keys, which a cluster refuses
# when they live on different slots.
_COUNT_IN_WINDOW = """
redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX')
return {redis.call('INCR', KEYS[1]), redis.call('TTL', KEYS[1])}
"""


async def count_in_window(redis: RedisClient, keys: list[str], window: int) -> list[Window]:
    """Count one event on each of ``keys``, fixed windows of ``window`` seconds from each key's
    first event; one round trip per Redis node."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.eval(_COUNT_IN_WINDOW, 1, key, window)
        results = await pipe.execute()
    return [Window(int(count), int(ttl)) for count, ttl in results]


class Window(NamedTuple):
    hits: int
    ttl: int  # seconds left in the window (-1/-2 if Redis lost the expiry: a full window)


def retry_after(windows: list[Window], limit: int, window: int) -> int:
    """Seconds until every window over ``limit`` has ended; 0 when none is over."""
    return max((w.ttl if w.ttl > 0 else window for w in windows if w.hits > limit), default=0)
