"""Pointing Blendtune at a Redis Cluster: the URL, and what must work across slots."""

from __future__ import annotations

import hashlib

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from server.redis_client import (
    ClusterAddress,
    count_in_window,
    is_cluster_url,
    parse_cluster_url,
)
from server.settings import SettingsError, load_settings
from tests.accounts.helpers import client_for, new_email
from tests.cluster.support import LocalCluster
from tests.support import ServerProcess, assert_problem, new_address


@pytest.mark.parametrize(
    ("url", "address"),
    [
        (
            "redis+cluster://10.0.0.1:6379,10.0.0.2:6380",
            ClusterAddress([("10.0.0.1", 6379), ("10.0.0.2", 6380)], None, None, False),
        ),
        (
            "rediss+cluster://app:s%40cret@redis-1:6379/0",
            ClusterAddress([("redis-1", 6379)], "app", "s@cret", True),
        ),
        (
            "redis+cluster://:pw@[::1]:7000/",
            ClusterAddress([("::1", 7000)], None, "pw", False),
        ),
    ],
)
def test_cluster_urls_name_the_seeds_and_credentials(url: str, address: ClusterAddress) -> None:
    assert is_cluster_url(url)
    assert parse_cluster_url(url) == address
    assert load_settings({"BLENDTUNE_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis+cluster://", "'' is not host:port"),
        ("redis+cluster://10.0.0.1", "'10.0.0.1' is not host:port"),
        ("redis+cluster://10.0.0.1:6379,10.0.0.2:99999", "'10.0.0.2:99999' is not host:port"),
        ("redis+cluster://10.0.0.1:6379/1", "a Redis Cluster has only database 0"),
        ("redis+cluster://10.0.0.1:6379?timeout=3", "options in a cluster URL are not supported"),
    ],
)
def test_a_malformed_cluster_url_stops_start_up_naming_the_variable(url: str, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"BLENDTUNE_REDIS_URL": url})
    assert str(info.value).startswith(f"BLENDTUNE_REDIS_URL={url!r} is invalid: ")
    assert words in str(info.value)


def test_a_single_redis_url_is_not_a_cluster() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://h:6379", "unix:///tmp/redis.sock"):
        assert not is_cluster_url(url)
        assert load_settings({"BLENDTUNE_REDIS_URL": url}).redis_url == url


async def test_window_counters_on_different_slots_count_in_one_call(
    cluster: LocalCluster, cluster_redis: RedisCluster
) -> None:
    # Two counters on two different masters (a MULTI over both would be refused: CROSSSLOT).
    first = f"bt_window:{new_address()}"
    second = first
    while cluster.slot_owner(key_slot(second.encode())) == cluster.slot_owner(
        key_slot(first.encode())
    ):
        second = f"bt_window:{new_address()}"
    assert [tuple(w) for w in await count_in_window(cluster_redis, [first, second], 60)] == [
        (1, 60),
        (1, 60),
    ]
    windows = await count_in_window(cluster_redis, [first, second], 60)
    assert [w.hits for w in windows] == [2, 2]
    assert all(0 < w.ttl <= 60 for w in windows)
    await cluster_redis.delete(first)
    await cluster_redis.delete(second)


async def test_login_limits_hold_across_processes_and_shards(
    trio: list[ServerProcess], cluster: LocalCluster
) -> None:
    """The per-address and per-account counters of one login live on different shards; both
    count, whichever process serves the request."""
    prefix = trio[0].env["BLENDTUNE_REDIS_PREFIX"]
    limit = int(trio[0].env["BLENDTUNE_AUTH_RATE_LIMIT_PER_MINUTE"])
    address, email = new_address(), new_email()

    def owner(key: str) -> int:
        return cluster.slot_owner(key_slot(key.encode()))

    def account(email: str) -> str:
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return f"{prefix}ratelimit:auth:acct:{digest}"

    while owner(account(email)) == owner(f"{prefix}ratelimit:auth:addr:{address}"):
        email = new_email()
    clients = [client_for(server.url, address) for server in trio]
    try:
        for i in range(limit):
            response = await clients[i % 3].post(
                "/auth/login", json={"email": email, "password": "not the password"}
            )
            assert_problem(response, 401, "invalid_credentials")
        response = await clients[limit % 3].post(
            "/auth/login", json={"email": email, "password": "not the password"}
        )
        assert_problem(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        # The account's counter tripped too: another address is refused for that email.
        other = client_for(trio[1].url, new_address())
        try:
            response = await other.post(
                "/auth/login", json={"email": email, "password": "not the password"}
            )
            assert_problem(response, 429, "rate_limited")
        finally:
            await other.aclose()
    finally:
        for client in clients:
            await client.aclose()
