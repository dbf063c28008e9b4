"""Room history in PostgreSQL (``rooms.history_store``) and its GET endpoints, on a real
server: listings with summaries, states at earlier seqs, versions, checkpoints, members only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from rooms import history, history_store, store
from rooms.kinds import SERVER_ACTOR, Actor
from server.mashups import room
from server.mashups.room import MashupRoom
from tests.history.support import Member, client, mashup_with
from tests.support import Backends, ServerProcess, make_user

KIND = MashupRoom()


@pytest.fixture
async def pool(backends: Backends) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(backends.database_url, min_size=1, max_size=2) as pool:
        yield pool


async def test_listing_states_and_versions_through_the_store(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    a, b = pair
    alice, bob, eve = [await make_user(db) for _ in range(3)]
    async with client(a.url) as http:
        mashup_id = await mashup_with(http, alice, bob)
    room_id = uuid.UUID(mashup_id)
    ann = await Member.connect(a.ws_url, mashup_id, alice.token)
    await ann.until_state(lambda s: len(s.members) == 2)
    tempos = [await ann.send_ops([{"op": "set_tempo", "bpm": float(n)}]) for n in range(90, 100)]
    head = tempos[-1]["seq"]
    await ann.caught_up(head)
    bpm = {t["seq"]: float(n) for t, n in zip(tempos, range(90, 100), strict=True)}

    # A snapshot (as the hub writes them) is copied into the checkpoints and prunes the log
    # (8 batches kept behind it); the state at every seq still restorable is the one the room
    # had then, and older ones are gone.
    await store.write_snapshot(pool, room_id, head, store.encode_state(ann.state), 8, 0)
    checkpoints = await db.fetch("SELECT seq FROM room_checkpoints WHERE room_id = $1", room_id)
    assert head in {row["seq"] for row in checkpoints}
    async with pool.acquire() as conn:
        oldest = await history_store.oldest(conn, room_id, head)
        kept = [seq for seq in bpm if seq >= oldest]
        states = await history_store.states_at(conn, KIND, room_id, kept)
        with pytest.raises(history.HistoryError) as info:
            await history_store.states_at(conn, KIND, room_id, [1])
        assert info.value.code == history.HISTORY_UNAVAILABLE
    assert 0 < oldest <= head and kept
    assert {seq: state.timeline.bpm for seq, state in states.items()} == {s: bpm[s] for s in kept}

    # An undo straight through the store (the hub only delivers what it commits).
    actor = Actor(user_id=alice.id, role="owner")
    done = await history_store.perform(
        pool, KIND, room_id, actor, "store-undo", history_store.Undo()
    )
    assert (done.seq, done.duplicate) == (head + 1, False)
    assert done.plan is not None and done.plan.mark == history.Mark("undo", head)
    assert done.plan.state.timeline.bpm == 98.0
    again = await history_store.perform(
        pool, KIND, room_id, actor, "store-undo", history_store.Undo()
    )
    assert (again.seq, again.duplicate) == (head + 1, True)
    version, duplicate = await history_store.name_version(
        pool, KIND, room_id, actor, "v-1", "Ninety-nine", head
    )
    assert not duplicate and version.seq == head
    assert (await history_store.name_version(pool, KIND, room_id, actor, "v-1", "x", None))[1]

    async with client(b.url) as http:
        base = f"/mashups/{mashup_id}"
        listing = (await http.get(base + "/history?limit=3", headers=bob.headers)).json()
        assert [e["seq"] for e in listing["entries"]] == [head + 1, head, head - 1]
        assert listing["entries"][0]["summary"] == f"undid #{head}"
        assert listing["entries"][1]["summary"] == "set the tempo to 99 BPM"
        older = (
            await http.get(base + f"/history?before={head - 1}&limit=1", headers=bob.headers)
        ).json()
        assert [e["seq"] for e in older["entries"]] == [head - 2]
        at = (await http.get(base + f"/history/{kept[0]}", headers=bob.headers)).json()
        assert at["state"]["timeline"]["bpm"] == bpm[kept[0]]
        listed = (await http.get(base + "/versions", headers=bob.headers)).json()["versions"]
        assert [(v["label"], v["author_name"]) for v in listed] == [("Ninety-nine", alice.username)]
        one = (await http.get(base + f"/versions/{version.id}", headers=bob.headers)).json()
        assert one["state"]["timeline"]["bpm"] == 99.0
        # Members only, and GET never writes.
        for path in ("/history", "/versions", f"/history/{head}", f"/versions/{version.id}"):
            response = await http.get(base + path, headers=eve.headers)
            assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
        for query in ("?limit=0", "?limit=201", "?before=x", "?before=0", f"?before={2**64}"):
            response = await http.get(base + "/history" + query, headers=bob.headers)
            assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
        for path in ("/history/-1", f"/history/{2**64}"):
            response = await http.get(base + path, headers=bob.headers)
            assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
        response = await http.get(base + "/history/1", headers=bob.headers)
        assert (response.status_code, response.json()["code"]) == (410, "history_unavailable")
        response = await http.get(base + f"/history/{head + 10}", headers=bob.headers)
        assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
        response = await http.get(base + f"/versions/{uuid.uuid4()}", headers=bob.headers)
        assert (response.status_code, response.json()["code"]) == (404, "unknown_version")
        assert (await http.get(base + "/history")).status_code == 401
    assert await db.fetchval("SELECT seq FROM rooms WHERE id = $1", room_id) == head + 1

    # A server batch made at Alice's request (a generated draft) is on her undo stack.
    draft = room.Generated(
        generation_id="g1",
        requested_by=alice.id,
        timeline=msgspec.structs.replace(done.plan.state.timeline, bpm=77.0),
        order={},
    )
    pending = store.Pending(SERVER_ACTOR, "gen-1", [draft], store.encode_ops([draft]))
    await store.commit(pool, store.Detached(KIND, room_id), [pending])
    assert pending.seq == head + 2
    undone = await history_store.perform(
        pool, KIND, room_id, actor, "undo-draft", history_store.Undo()
    )
    assert undone.plan is not None and undone.plan.mark.target == head + 2
    assert undone.plan.state.timeline.bpm == 98.0
    await ann.close()
