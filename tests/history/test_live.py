"""Done-when of issue 17, end to end: two server processes, real PostgreSQL and Redis.

Undo and redo across processes and across a reconnect; the conflict rule between two members;
a named version restored exactly, and the restore undone; history and versions surviving a
kill -9 of every server process.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from tests.conftest import StartServer
from tests.history.conftest import HISTORY_ENV
from tests.history.support import Member, client, mashup_with, two_members
from tests.rooms.client import join
from tests.rooms.notes import members_key
from tests.support import Backends, ServerProcess, eventually, make_user

TEMPO = {"op": "set_tempo", "bpm": 100.0}
LIMITER = {"op": "set_master", "effects": [{"type": "limiter"}]}


async def test_undo_and_redo_across_processes_and_a_reconnect(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection
) -> None:
    a, b = pair
    alice, bob, mashup_id, ann, ben = await two_members(a, b, db)
    tempo = await ann.send_ops([TEMPO])
    master = await ann.send_ops([LIMITER])
    key = await ben.send_ops([{"op": "set_key", "key": "C major"}])
    await ann.caught_up(key["seq"])

    undone = await ann.undo()
    assert undone["type"] == "ack", undone
    assert undone["history"] == {
        "action": "undo", "target": master["seq"], "applied": 1, "skipped": 0
    }  # fmt: skip
    assert undone["ops"] == [{"op": "set_master", "effects": []}]
    timeline = ann.state.timeline
    assert (timeline.bpm, timeline.key, timeline.master) == (100.0, "C major", ())
    # Bob, on the other process, gets it as Alice's ordinary batch.
    batch = await ben.until(lambda m: m["type"] == "batch" and m["seq"] == undone["seq"])
    assert (batch["author"], batch["op_id"]) == (str(alice.id), undone["op_id"])
    assert ben.state == ann.state

    # Alice reconnects, on the other process: her history is the server's, not the socket's.
    await ann.close()
    ann = await Member.connect(b.ws_url, mashup_id, alice.token)
    second = await ann.undo()
    assert second["history"]["target"] == tempo["seq"]
    assert ann.state.timeline.bpm == 120.0
    redone = await ann.redo()
    assert redone["history"] == {
        "action": "redo", "target": second["seq"], "applied": 1, "skipped": 0
    }  # fmt: skip
    assert ann.state.timeline.bpm == 100.0
    # A re-sent op id is answered with its first seq and changes nothing.
    again = await ann.request({"type": "redo", "op_id": redone["op_id"]})
    assert (again["type"], again["seq"], again["duplicate"]) == ("ack", redone["seq"], True)
    await ben.caught_up(redone["seq"])
    assert ben.state == ann.state
    # Undo after the redo undoes the redo; the next redo takes the older undo.
    third = await ann.undo()
    assert third["history"]["target"] == redone["seq"]
    assert ann.state.timeline.bpm == 120.0

    async with client(b.url) as http:
        listing = (await http.get(f"/mashups/{mashup_id}/history", headers=bob.headers)).json()
    newest = listing["entries"][0]
    assert listing["seq"] == third["seq"] == newest["seq"]
    assert newest["history"] == {"action": "undo", "target": redone["seq"]}
    assert newest["author"] == str(alice.id) and newest["author_name"] == alice.username
    assert newest["summary"] == f"undid #{redone['seq']}"
    by_seq = {e["seq"]: e for e in listing["entries"]}
    assert by_seq[tempo["seq"]]["summary"] == "set the tempo to 100 BPM"
    assert by_seq[tempo["seq"]]["history"] is None
    await ann.close()
    await ben.close()


async def test_an_undo_skips_what_someone_else_changed_since(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection
) -> None:
    a, b = pair
    *_, ann, ben = await two_members(a, b, db)
    await ann.send_ops([TEMPO, LIMITER])
    later = await ben.send_ops([{"op": "set_tempo", "bpm": 140.0}])
    await ann.caught_up(later["seq"])
    undone = await ann.undo()
    # Bob's tempo stays; Alice's master chain (nobody touched it since) is undone.
    assert undone["history"]["skipped"] == 1 and undone["history"]["applied"] == 1
    assert (ann.state.timeline.bpm, ann.state.timeline.master) == (140.0, ())
    # Everything skipped: still a (empty) batch, and still done.
    await ann.send_ops([{"op": "set_tempo", "bpm": 90.0}])
    last = await ben.send_ops([{"op": "set_tempo", "bpm": 91.0}])
    await ann.caught_up(last["seq"])
    empty = await ann.undo()
    assert (empty["ops"], empty["history"]["applied"], empty["history"]["skipped"]) == ([], 0, 1)
    batch = await ben.until(lambda m: m["type"] == "batch" and m["seq"] == empty["seq"])
    assert batch["ops"] == []
    assert ann.state.timeline.bpm == ben.state.timeline.bpm == 91.0
    await ann.close()
    await ben.close()


async def test_a_named_version_is_restored_exactly_and_the_restore_undone(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection
) -> None:
    a, b = pair
    alice, bob, mashup_id, ann, ben = await two_members(a, b, db)
    edit = await ann.send_ops([TEMPO, LIMITER, {"op": "set_key", "key": "A minor"}])
    named = await ann.request({"type": "version", "label": "  First   take "})
    assert named["type"] == "version" and not named["duplicate"]
    version = named["version"]
    assert (version["label"], version["seq"], version["author"]) == (
        "First take", edit["seq"], str(alice.id)
    )  # fmt: skip
    # Everyone in the room hears of it, on every process.
    told = await ben.until(lambda m: m["type"] == "version")
    assert told["version"] == version
    at_version = ann.state.timeline
    later = await ben.send_ops(
        [{"op": "set_tempo", "bpm": 140.0}, {"op": "set_key", "key": None},
         {"op": "set_master", "effects": []}]
    )  # fmt: skip
    await ann.caught_up(later["seq"])
    before_restore = ann.state.timeline

    restored = await ann.request({"type": "restore", "version": version["id"]})
    assert restored["history"] == {
        "action": "restore", "target": edit["seq"], "applied": 3, "skipped": 0
    }  # fmt: skip
    assert ann.state.timeline == at_version
    await ben.caught_up(restored["seq"])
    assert ben.state == ann.state
    async with client(b.url) as http:
        stored = (
            await http.get(f"/mashups/{mashup_id}/versions/{version['id']}", headers=bob.headers)
        ).json()
        assert stored["version"]["label"] == "First take"
        assert (
            stored["state"]["timeline"]
            == (
                await http.get(f"/mashups/{mashup_id}/history/{edit['seq']}", headers=bob.headers)
            ).json()["state"]["timeline"]
        )
        listed = (await http.get(f"/mashups/{mashup_id}/versions", headers=bob.headers)).json()
    assert [v["id"] for v in listed["versions"]] == [version["id"]]
    assert listed["versions"][0]["author_name"] == alice.username

    # The restore is Alice's newest edit: undo brings back what Bob had made.
    undone = await ann.undo()
    assert undone["history"]["target"] == restored["seq"]
    assert ann.state.timeline == before_restore
    # Restoring a seq (not a version) works the same way.
    by_seq = await ben.request({"type": "restore", "seq": edit["seq"]})
    assert by_seq["history"]["action"] == "restore"
    assert ben.state.timeline == at_version
    await ann.close()
    await ben.close()


async def test_history_and_versions_survive_kill_9_of_every_process(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    # (Started side by side: start-up is mostly one core's work.)
    first, second = await asyncio.gather(
        start_server(env=HISTORY_ENV), start_server(env=HISTORY_ENV)
    )
    alice, bob, mashup_id, ann, ben = await two_members(first, second, db)
    await ann.send_ops([TEMPO])
    named = await ann.request({"type": "version", "label": "tempo 100"})
    await ann.send_ops([LIMITER])
    undone = await ann.undo()
    assert undone["type"] == "ack"
    expected = ann.state.timeline
    first.kill()
    second.kill()
    await ann.client.closed()
    await ben.client.closed()

    third, fourth = await asyncio.gather(
        start_server(env=HISTORY_ENV), start_server(env=HISTORY_ENV)
    )
    ann = await Member.connect(third.ws_url, mashup_id, alice.token)
    ben = await Member.connect(fourth.ws_url, mashup_id, bob.token)
    assert ann.state.timeline == expected
    # The redo stack came back from the log: the undone master chain returns.
    redone = await ann.redo()
    assert redone["history"]["target"] == undone["seq"]
    assert ann.state.timeline.master != ()
    await ben.caught_up(redone["seq"])
    assert ben.state == ann.state
    async with client(fourth.url) as http:
        listed = (await http.get(f"/mashups/{mashup_id}/versions", headers=bob.headers)).json()
    assert [v["label"] for v in listed["versions"]] == ["tempo 100"]
    restored = await ben.request({"type": "restore", "version": named["version"]["id"]})
    assert restored["type"] == "ack"
    assert (ben.state.timeline.bpm, ben.state.timeline.master) == (100.0, ())
    await ann.caught_up(restored["seq"])
    assert ann.state == ben.state
    await ann.close()
    await ben.close()


def error_of(answer: dict[str, Any]) -> str:
    assert answer["type"] == "error", answer
    code: str = answer["code"]
    return code


async def test_bad_history_requests_get_their_documented_errors(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection
) -> None:
    a, _ = pair
    alice, dan, carol = [await make_user(db) for _ in range(3)]
    async with client(a.url) as http:
        mashup_id = await mashup_with(http, alice, dan, carol)
        made = await http.put(
            f"/mashups/{mashup_id}/members/{carol.id}", json={"role": "viewer"},
            headers=alice.headers,
        )  # fmt: skip
        assert made.status_code == 200
    ann = await Member.connect(a.ws_url, mashup_id, alice.token)
    await ann.until_state(lambda s: len(s.members) == 3)
    first = await ann.send_ops([TEMPO])

    # Nothing to undo or redo (a member who never edited; and nothing undone yet).
    newcomer = await Member.connect(a.ws_url, mashup_id, dan.token)
    assert error_of(await newcomer.undo()) == "nothing_to_undo"
    assert error_of(await newcomer.redo()) == "nothing_to_redo"
    assert error_of(await ann.redo()) == "nothing_to_redo"
    # A viewer may not undo, restore or name versions.
    viewer = await Member.connect(a.ws_url, mashup_id, carol.token)
    assert error_of(await viewer.undo()) == "forbidden"
    assert error_of(await viewer.request({"type": "restore", "seq": 0})) == "forbidden"
    assert error_of(await viewer.request({"type": "version", "label": "mine"})) == "forbidden"
    # Unknown versions, seqs outside the room, restore without exactly one target.
    unknown = {"type": "restore", "version": str(uuid.uuid4())}
    assert error_of(await ann.request(unknown)) == "unknown_version"
    for bad in (
        {"type": "restore", "seq": 10**6},
        {"type": "restore", "seq": -1},
        {"type": "restore"},
        {"type": "restore", "seq": 1, "version": str(uuid.uuid4())},
        {"type": "version", "label": "   "},
        {"type": "version", "label": "x" * 101},
        {"type": "version", "label": "later", "seq": 10**6},
    ):
        assert error_of(await ann.request(bad)) == "invalid", bad
    # Malformed messages.
    for bad in (
        {"type": "undo", "op_id": ""},
        {"type": "undo", "op_id": "x" * 65},
        {"type": "undo", "op_id": "u1", "extra": 1},
        {"type": "restore", "op_id": "u2", "seq": "3"},
        {"type": "version", "op_id": "u3"},
    ):
        await ann.client.send(bad)
        answer = await ann.until(lambda m: m["type"] == "error")
        assert answer["code"] == "bad_message", (bad, answer)
    await ann.client.send({"type": "undo"})
    answer = await ann.until(lambda m: m["type"] == "error")
    assert (answer["code"], answer["op_id"]) == ("bad_message", None)
    # None of it changed anything.
    assert ann.state.timeline.bpm == 100.0
    async with client(a.url) as http:
        seq = (await http.get(f"/mashups/{mashup_id}/history", headers=alice.headers)).json()
        assert seq["seq"] == first["seq"]

        # Beyond the kept history (a snapshot every 4 batches, 8 kept behind it): history
        # batches write their snapshot before their ack, so the log is pruned by then.
        for bpm in range(101, 115):
            await ann.send_ops([{"op": "set_tempo", "bpm": float(bpm)}])
        for _ in range(4):
            await ann.undo()
        oldest = (await http.get(f"/mashups/{mashup_id}/history", headers=alice.headers)).json()
        assert oldest["oldest"] > 1
        gone = {"type": "restore", "seq": 1}
        assert error_of(await ann.request(gone)) == "history_unavailable"
        gone = {"type": "version", "label": "old", "seq": 1}
        assert error_of(await ann.request(gone)) == "history_unavailable"
        kept = await ann.request({"type": "restore", "seq": oldest["oldest"]})
        assert kept["type"] == "ack"

    for member in (ann, newcomer, viewer):
        await member.close()


async def test_a_kind_without_history_answers_not_supported(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection, backends: Backends
) -> None:
    a, _ = pair
    user = await make_user(db)
    room_id = uuid.uuid4()
    redis = aioredis.from_url(backends.redis_url)
    try:
        await redis.hset(members_key(backends.redis_prefix, room_id), str(user.id), "editor")
    finally:
        await redis.aclose()
    member = await join(a.ws_url, room_id, user.token, kind="notes")
    await member.ops([{"op": "title", "title": "x"}])
    for message in (
        {"type": "undo"},
        {"type": "redo"},
        {"type": "restore", "seq": 0},
        {"type": "version", "label": "v"},
    ):
        op_id = uuid.uuid4().hex
        await member.send({**message, "op_id": op_id})
        answer = await member.until(lambda m, op_id=op_id: m.get("op_id") == op_id)
        assert (answer["type"], answer["code"]) == ("error", "not_supported"), message
    await member.close()


async def test_the_author_gets_the_ack_even_when_a_catch_up_delivers_the_undo_first(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection, backends: Backends
) -> None:
    """An undo's batch can reach the author's process through the log before the request
    itself is done there: here its snapshot write (due at every 4th seq) is held on a row
    lock while Alice's next edit makes her process catch up from the log. Alice must get the
    ack (with its ops) for her undo all the same, and Bob, on the other process, a batch."""
    a, b = pair
    alice, _, mashup_id, ann, ben = await two_members(a, b, db)
    room_id = uuid.UUID(mashup_id)
    # Edits until a snapshot exists and the next batch (the undo) is due to write another.
    last = await ann.send_ops([TEMPO])
    while last["seq"] < 4 or (last["seq"] + 1) % 4:
        bpm = ann.state.timeline.bpm
        last = await ann.send_ops([{"op": "set_tempo", "bpm": 100.0 + last["seq"]}])
    await ben.caught_up(last["seq"])

    async def snapshot() -> int | None:
        found = await db.fetchval("SELECT seq FROM room_snapshots WHERE room_id = $1", room_id)
        return None if found is None else int(found)

    await eventually(snapshot, what="the room's first snapshot")
    holder = await asyncpg.connect(backends.database_url)
    try:
        lock = holder.transaction()
        await lock.start()
        held = await holder.fetchval(
            "SELECT seq FROM room_snapshots WHERE room_id = $1 FOR UPDATE", room_id
        )
        assert held is not None
        op_id = uuid.uuid4().hex
        await ann.client.send({"type": "undo", "op_id": op_id})
        undo_seq = last["seq"] + 1

        async def committed() -> bool:
            found = await db.fetchval(
                "SELECT op_id FROM room_ops WHERE room_id = $1 AND seq = $2", room_id, undo_seq
            )
            return bool(found == op_id)

        await eventually(committed, what="the undo's commit")
        # The undo's request now waits on the snapshot row; Alice's next edit catches her
        # process up from the log, undo included.
        await ann.client.send(
            {"type": "ops", "op_id": uuid.uuid4().hex, "ops": [{"op": "set_key", "key": "A minor"}]}
        )
        first = await ann.until(lambda m: m.get("seq") == undo_seq)
        await lock.rollback()
    finally:
        await holder.close()
    assert (first["type"], first["op_id"]) == ("ack", op_id), first
    assert first["ops"] == [{"op": "set_tempo", "bpm": bpm}]
    assert first["history"] == {
        "action": "undo", "target": last["seq"], "applied": 1, "skipped": 0
    }  # fmt: skip
    seen = await ben.until(lambda m: m.get("seq") == undo_seq)
    assert (seen["type"], seen["op_id"], seen["author"]) == ("batch", op_id, str(alice.id))
    await ann.close()
    await ben.close()


async def test_an_undo_whose_ack_was_lost_arrives_on_resume_and_a_resend_is_a_duplicate(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection
) -> None:
    """Alice's connection drops with her undo's ack unread. Resuming on the other process
    from her last seq, she gets the undo as a batch carrying her op id; resending it changes
    nothing (a duplicate); and her redo stack is the server's: redo takes that undo."""
    a, b = pair
    alice, _, mashup_id, ann, ben = await two_members(a, b, db)
    edit = await ann.send_ops([TEMPO])
    op_id = uuid.uuid4().hex
    await ann.client.send({"type": "undo", "op_id": op_id})
    seen = await ben.until(lambda m: m["type"] == "batch" and m["op_id"] == op_id)
    await ann.close()  # (its ack unread)

    resumed = await join(
        b.ws_url, uuid.UUID(mashup_id), alice.token, kind="mashup", last_seq=edit["seq"]
    )
    assert resumed.welcome["resumed"] is True
    got = await resumed.until(lambda m: m.get("seq") == seen["seq"])
    assert (got["type"], got["op_id"], got["ops"]) == ("batch", op_id, seen["ops"])
    await resumed.send({"type": "undo", "op_id": op_id})
    again = await resumed.until(lambda m: m.get("op_id") == op_id and m["type"] != "batch")
    assert (again["type"], again["seq"], again["duplicate"]) == ("ack", seen["seq"], True)
    redo_id = uuid.uuid4().hex
    await resumed.send({"type": "redo", "op_id": redo_id})
    redone = await resumed.until(lambda m: m.get("op_id") == redo_id)
    assert redone["type"] == "ack" and redone["history"]["target"] == seen["seq"]
    assert redone["ops"] == [TEMPO]
    await ben.until(lambda m: m["type"] == "batch" and m["op_id"] == redo_id)
    assert ben.state.timeline.bpm == 100.0
    await resumed.close()
    await ben.close()
