"""Gap and duplicate counting, per room for ops and per sender for presence; the wire modes.

Frames are fed to a worker as the server would send them, through the modes' parsers: no
sockets, no processes.
"""

from __future__ import annotations

import json
import time

import msgspec
import pytest

from loadtest import modes
from loadtest.blendtune import BlendtuneMode, parse_op_id
from loadtest.report import RunConfig, build, plot, write_json
from loadtest.runner import RunOptions, duration_for_messages, plan_members
from loadtest.worker import Conn, Worker, WorkerPlan


def make_worker(mode: str = "blendtune", room_size: int = 5, members: int = 2) -> Worker:
    plan = WorkerPlan(
        index=0,
        mode=mode,
        members=[
            modes.Member(room="r", room_index=0, index=i, room_size=room_size, url="http://x")
            for i in range(members)
        ],
    )
    worker = Worker(plan, lambda message: None)
    worker.running = True
    worker.start = time.time()
    return worker


def feed(worker: Worker, conn: Conn, message: dict[str, object]) -> None:
    conn.on_text(json.dumps(message).encode())


def batch(seq: int, sender: int, n: int = 1) -> dict[str, object]:
    return {
        "type": "batch",
        "seq": seq,
        "author": "00000000-0000-0000-0000-000000000001",
        "op_id": f"{sender}.{n}.{time.time() - 0.01:.6f}",
        "ops": [{"op": "tick"}],
    }


def test_ops_gaps_and_duplicates_are_counted_per_member_from_the_welcome_seq() -> None:
    worker = make_worker()
    a, b = worker.conns
    feed(worker, a, {"type": "welcome", "seq": 10, "state": {"batches": 10}, "members": []})
    feed(worker, b, {"type": "welcome", "seq": 12, "state": None, "members": []})
    assert a.joined and b.joined
    feed(worker, a, batch(11, sender=3))
    feed(worker, a, batch(13, sender=3))  # 12 never came: one gap
    feed(worker, a, batch(13, sender=3))  # twice: a duplicate
    feed(worker, b, batch(13, sender=4))  # b joined at 12: no gap
    feed(worker, b, batch(12, sender=4))  # older than what b has: a duplicate
    c = worker.counters
    assert (c.ops_gaps, c.ops_duplicates) == (1, 2)
    assert c.ops_received == 3  # duplicates are not deliveries
    assert worker.ops.latency and all(0 < x < 1 for x in worker.ops.latency)


def test_a_resumed_member_keeps_counting_from_its_own_last_seq() -> None:
    worker = make_worker()
    a, b = worker.conns
    for conn in (a, b):
        feed(worker, conn, {"type": "welcome", "seq": 5, "state": {}, "members": []})
        feed(worker, conn, batch(6, sender=3))
    # Both reconnect having seen 6; the room is at 9 meanwhile.
    a.resuming = b.resuming = True
    feed(worker, a, {"type": "welcome", "seq": 9, "resumed": True, "state": None, "members": []})
    feed(worker, b, {"type": "welcome", "seq": 9, "resumed": False, "state": {}, "members": []})
    assert a.last_seq == 6  # the missed batches follow
    assert b.last_seq == 9  # a snapshot: start over from there
    for seq in (7, 9):  # 8 is missing from what a was sent: a gap
        feed(worker, a, batch(seq, sender=3))
    feed(worker, b, batch(10, sender=3))
    c = worker.counters
    assert (c.resumes, c.resyncs) == (1, 1)
    assert (c.ops_gaps, c.ops_duplicates) == (1, 0)


def test_an_ack_advances_the_authors_seq_and_measures_ack_latency() -> None:
    worker = make_worker()
    a = worker.conns[0]
    feed(worker, a, {"type": "welcome", "seq": 0, "state": None, "members": []})
    a.pending_ops[1] = time.time() - 0.02
    feed(worker, a, {"type": "ack", "op_id": f"0.1.{time.time():.6f}", "seq": 1})
    feed(worker, a, batch(2, sender=1))  # the next batch follows the acked one: no gap
    assert worker.counters.ops_acked == 1
    assert worker.counters.ops_gaps == 0
    assert worker.counters.expected_op_deliveries == 4  # the other four members of the room
    assert 0.02 <= worker.acks.latency[0] < 1
    # An ack for a batch we never sent (or twice) is not counted again.
    feed(worker, a, {"type": "ack", "op_id": "0.1.1.0", "seq": 3})
    assert worker.counters.ops_acked == 1


def test_a_step_counts_only_what_was_sent_inside_its_measured_window() -> None:
    worker = make_worker(members=2)
    a, b = worker.conns
    for conn in (a, b):
        feed(worker, conn, {"type": "welcome", "seq": 0, "state": None, "members": []})
    worker.counters.connections_held = 2
    now = time.time()
    worker.window = (now - 1.0, now)  # after the settle time, before the drain

    def presence(n: int, t: float) -> dict[str, object]:
        return {"type": "presence", "id": "x", "state": {"m": 1, "n": n, "t": t}}

    feed(worker, a, presence(1, now - 1.5))  # sent while settling: not counted
    feed(worker, a, presence(2, now - 0.5))
    feed(worker, a, presence(4, now - 0.2))  # 3 was skipped inside the window
    feed(worker, a, presence(4, now - 0.2))  # a duplicate, wherever it was sent
    feed(worker, a, presence(5, now + 0.1))  # sent after the window: not counted
    a.pending_ops[1] = now - 1.2  # sent while settling
    a.pending_ops[2] = now - 0.3
    feed(worker, a, {"type": "ack", "op_id": f"0.1.{now:.6f}", "seq": 1})
    feed(worker, a, {"type": "ack", "op_id": f"0.2.{now:.6f}", "seq": 2})
    c = worker.counters
    assert (c.presence_received, c.presence_skipped, c.presence_duplicates) == (2, 1, 1)
    assert len(worker.presence.latency) == 2
    assert c.ops_acked == 1 and len(worker.acks.latency) == 1
    assert not a.pending_ops  # both acked: neither is waited for again

    # The next step starts from zero, over the same connections; until it sets its window,
    # deliveries still in flight count nowhere.
    worker.reset()
    assert worker.counters.connections_held == 2
    assert (worker.counters.presence_received, worker.counters.presence_duplicates) == (0, 0)
    feed(worker, a, presence(6, now - 0.1))
    assert worker.counters.presence_received == 0
    # Ordering carries over: an old update is still a duplicate, a new one still counts.
    worker.window = (now - 1.0, now + 10)
    feed(worker, a, presence(5, now + 0.1))
    feed(worker, a, presence(7, now + 0.2))
    assert (worker.counters.presence_duplicates, worker.counters.presence_received) == (1, 1)


def test_rejections_and_errors_are_reported() -> None:
    worker = make_worker()
    a = worker.conns[0]
    a.pending_ops[7] = time.time()
    feed(worker, a, {"type": "error", "code": "rate_limited", "detail": "x", "op_id": "0.7.1.5"})
    feed(worker, a, {"type": "error", "code": "bad_message", "detail": "x"})
    assert worker.counters.ops_rejected == 1
    assert "op rejected: rate_limited" in worker.errors
    assert "server error: bad_message" in worker.errors


def test_presence_is_tracked_per_sender_skips_are_not_duplicates() -> None:
    worker = make_worker()
    a = worker.conns[0]
    t = time.time()

    def presence(sender: int, n: int) -> dict[str, object]:
        return {"type": "presence", "id": "p.1", "state": {"m": sender, "n": n, "t": t}}

    for message in (presence(1, 1), presence(1, 2), presence(2, 1), presence(1, 5)):
        feed(worker, a, message)
    feed(worker, a, presence(1, 4))  # older than 5 from the same sender
    feed(worker, a, presence(2, 1))  # again
    feed(worker, a, presence(0, 9))  # our own (index 0) echoed: ignored
    c = worker.counters
    assert c.presence_received == 4
    assert c.presence_skipped == 2  # 3 and 4 of sender 1 were coalesced away
    assert c.presence_duplicates == 2


def test_a_server_ping_is_answered_and_unknown_frames_are_ignored() -> None:
    mode = BlendtuneMode()
    assert mode.parse(b'{"type":"ping"}') == (modes.REPLY, b'{"type":"pong"}')
    for junk in (
        b"",
        b"not json",
        b'{"type":"joined","member":{}}',
        b'{"type":"members","joined":[],"left":[]}',
        b"[1,2]",
        b'{"no":"type"}',
    ):
        assert mode.parse(junk) == (modes.OTHER,)
    # Presence from a client that is not the load tester.
    assert mode.parse(b'{"type":"presence","id":"x","state":{"cursor":1}}') == (modes.OTHER,)


def test_blendtune_frames_round_trip() -> None:
    mode = BlendtuneMode("loadtest", payload_bytes=178)
    member = modes.Member(room="abc", room_index=0, index=3, room_size=5, url="https://h:8443/")
    assert mode.url(member) == "wss://h:8443/rooms/loadtest/abc"
    hello = msgspec.json.decode(mode.hello(member)[0])
    assert hello == {"type": "hello", "v": 2, "token": ""}
    resume = msgspec.json.decode(mode.hello(member, 41)[0])
    assert resume == {"type": "hello", "v": 2, "token": "", "last_seq": 41}
    frame = mode.presence(member, 17, 1234.5)
    assert len(frame) == 178
    sent = msgspec.json.decode(frame)
    echoed = json.dumps({"type": "presence", "id": "m", "state": sent["state"]}).encode()
    assert mode.parse(echoed) == (modes.PRESENCE, 3, 17, 1234.5)
    op = msgspec.json.decode(mode.op(member, 9, 1234.5))
    assert op["ops"] == [{"op": "tick"}]
    assert parse_op_id(op["op_id"]) == (3, 9, 1234.5)
    for bad in ("", "1.2", "a.b.c", "1.2.x"):
        assert parse_op_id(bad) is None


def test_simple_frames_round_trip() -> None:
    mode = modes.SimpleMode(payload_bytes=178)
    member = modes.Member(room="lt-1", room_index=1, index=2, room_size=5, url="http://h:9")
    assert mode.url(member) == "ws://h:9/simple"
    assert msgspec.json.decode(mode.hello(member)[0]) == {"type": "join", "room": "lt-1"}
    frame = mode.presence(member, 4, 99.25)
    assert len(frame) == 178
    assert mode.parse(frame) == (modes.PRESENCE, 2, 4, 99.25)
    assert mode.parse(b'{"type":"joined"}') == (modes.READY, 0, False)
    assert mode.parse(b"garbage") == (modes.OTHER,)
    with pytest.raises(ValueError):
        mode.op(member, 1, 0.0)


def test_members_are_spread_over_processes_and_urls() -> None:
    options = RunOptions(
        urls=["http://a", "http://b"],
        shape="t",
        mode="simple",
        rooms=3,
        members=4,
        presence_rate=1,
        op_rate=0,
        duration=1,
        processes=2,
        run_name="x",
    )
    plans = plan_members(options)
    everyone = [m for plan in plans for m in plan]
    assert len(everyone) == 12
    assert {(m.room, m.index) for m in everyone} == {
        (f"x-{r}", i) for r in range(3) for i in range(4)
    }
    for r in range(3):
        room = [m for m in everyone if m.room_index == r]
        assert {m.url for m in room} == {"http://a", "http://b"}
        assert {i for i, plan in enumerate(plans) for m in plan if m.room_index == r} == {0, 1}
    assert duration_for_messages(120, options) == 10.0
    with pytest.raises(ValueError):
        duration_for_messages(10, RunOptions(**{**options.__dict__, "presence_rate": 0}))


def test_report_merges_workers_and_writes_json_and_plot(tmp_path: object) -> None:
    results = []
    for index in range(2):
        worker = make_worker(members=1)
        worker.plan.index = index
        conn = worker.conns[0]
        feed(worker, conn, {"type": "welcome", "seq": 0, "state": None, "members": []})
        worker.counters.connections_opened += 1
        worker.counters.presence_sent = 10
        worker.counters.expected_presence_deliveries = 40
        t = time.time() - 0.005
        for n in range(1, 31):
            feed(worker, conn, {"type": "presence", "id": "x", "state": {"m": 1, "n": n, "t": t}})
        worker.presence_sent_per_s = {0: 10}
        results.append(worker.result())
    config = RunConfig(
        shape="t",
        mode="blendtune",
        urls=["http://x"],
        rooms=1,
        members=5,
        presence_rate=1,
        op_rate=0,
        duration=2,
        processes=2,
        compression=False,
        churn_rate=0,
        payload_bytes=178,
    )
    report, dists = build(
        results=results, config=config, started_at="now", measured_seconds=2.0, server=[]
    )
    assert report.presence.sent == 20
    assert report.presence.publishes_per_s == 10
    assert report.presence.received == 60
    assert report.presence.delivered_pct == 75.0
    assert report.presence.latency.count == 60
    assert 5 <= report.presence.latency.p50_ms < 1000
    assert report.timeline[0].presence_sent == 20
    assert dists.presence.total == 60
    json_path = f"{tmp_path}/r.json"
    png_path = f"{tmp_path}/r.png"
    write_json(report, json_path)
    plot(report, dists, png_path)
    with open(json_path) as f:
        assert json.load(f)["presence"]["received"] == 60
    with open(png_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
