"""The pure parts of the rooms core: fractional keys, token buckets, queues, envelopes."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from rooms import fractional
from rooms import protocol as p
from rooms.conn import Bucket, Conn, Pumps
from rooms.fanout import pack, unpack
from rooms.kinds import Actor
from rooms.metrics import RoomMetrics


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=60))
def test_fractional_keys_insert_anywhere_in_order(positions: list[int]) -> None:
    keys: list[str] = []
    for position in positions:
        i = position % (len(keys) + 1)
        before = keys[i - 1] if i > 0 else None
        after = keys[i] if i < len(keys) else None
        key = fractional.key_between(before, after)
        assert fractional.is_valid_key(key)
        assert (before is None or before < key) and (after is None or key < after)
        keys.insert(i, key)
    assert keys == sorted(keys)


def test_fractional_keys_between_many_and_bad_input() -> None:
    keys = fractional.keys_between("1", "2", 10)
    assert keys == sorted(keys) and len(set(keys)) == 10
    assert all("1" < k < "2" for k in keys)
    for before, after in (("2", "1"), ("1", "1"), ("a0", None), ("", None), ("a b", None)):
        with pytest.raises(fractional.InvalidKey):
            fractional.key_between(before, after)


def test_bucket_allows_the_rate_then_refuses_then_calls_a_flood() -> None:
    bucket = Bucket(10)
    now = bucket.last
    assert all(bucket.take(now) for _ in range(10))
    assert bucket.take(now) is False
    verdicts = [bucket.take(now) for _ in range(20)]
    assert None in verdicts  # far over the rate with no time passing: a flood
    later = Bucket(10)
    t = later.last
    for _ in range(100):  # exactly at the rate: never refused
        t += 0.1
        assert later.take(t) is True


def make_conn(max_queue: int = 8) -> Conn:
    hub: Any = SimpleNamespace(
        settings=SimpleNamespace(ws_send_queue_max=max_queue, ws_ops_per_second=10),
        metrics=RoomMetrics(CollectorRegistry()),
        pumps=Pumps(),
    )
    member = p.Member(id="x.1", user_id=uuid.uuid4(), role="editor")
    return Conn(hub, send=None, abort=lambda: None, member=member, actor=Actor(member.user_id, "e"))  # type: ignore[arg-type]


async def test_presence_is_coalesced_and_slow_consumers_are_closed() -> None:
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message.get("text") or f"close {message['code']}")

    conn = make_conn()
    conn.send = send
    conn.enqueue("{1}")
    for i in range(5):
        conn.enqueue_presence("m.1", f"{{p{i}}}")
    conn.enqueue_presence("m.2", "{other}")
    conn.enqueue("{2}")
    conn.close(4000, "done")
    await conn.run_writer()
    # Only the newest presence per member, in the place of the first one.
    assert sent == ["{1}", "{p4}", "{other}", "{2}", "close 4000"]

    slow = make_conn(max_queue=3)
    for i in range(4):
        slow.enqueue(f"{{b{i}}}")
    assert slow.close_code == p.Close.RESYNC and not slow.queue
    slow.enqueue("{ignored}")
    assert not slow.queue
    await asyncio.sleep(0)


def test_envelopes_round_trip() -> None:
    data = pack("b", 42, "abc123", "editor", '{"type":"batch","seq":42}')
    env = unpack(data)
    assert (env.type, env.key, env.origin, env.role) == ("b", "42", "abc123", "editor")
    assert env.payload == '{"type":"batch","seq":42}' and env.published_at > 0
    multiline = unpack(pack("p", "m.1", "o", "-", '{"state":"a\\nb"}'))
    assert multiline.payload == '{"state":"a\\nb"}'
