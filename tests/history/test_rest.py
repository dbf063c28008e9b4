"""Room history in PostgreSQL (``rooms.history_store``) and its GET endpoints, on a real
server: listings with summaries, states at earlier seqs, versions, checkpoints, members only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from rooms import history, history_store
from rooms.kinds import Actor
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
    tempos = [
        await ann.send_ops([{"op": "set_tempo", "bpm": float(bpm)}]) for bpm in range(90, 100)
    ]
    states = {}
    for sent in tempos:
        await ann.caught_up(sent["seq"])
    head = tempos[-1]["seq"]

    # Snapshots every 4 batches were copied into checkpoints, and the state at every kept seq
    # is the one the room had then (8 batches are kept behind the latest snapshot).
    checkpoints = await db.fetch("SELECT seq FROM room_checkpoints WHERE room_id = $1", room_id)
    assert checkpoints and all(row["seq"] % 4 == 0 for row in checkpoints)
    kept = tempos[-6:]
    async with pool.acquire() as conn:
        states = await history_store.states_at(conn, KIND, room_id, [t["seq"] for t in kept])
        with pytest.raises(history.HistoryError) as info:
            await history_store.states_at(conn, KIND, room_id, [1])
        assert info.value.code == history.HISTORY_UNAVAILABLE
    assert [states[t["seq"]].timeline.bpm for t in kept] == [float(b) for b in range(94, 100)]

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
        pool, KIND, room_id, actor, "v-1", "Ninety-four", kept[0]["seq"]
    )
    assert not duplicate and version.seq == kept[0]["seq"]
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
        at = (await http.get(base + f"/history/{kept[1]['seq']}", headers=bob.headers)).json()
        assert at["state"]["timeline"]["bpm"] == 95.0
        listed = (await http.get(base + "/versions", headers=bob.headers)).json()["versions"]
        assert [(v["label"], v["author_name"]) for v in listed] == [("Ninety-four", alice.username)]
        one = (await http.get(base + f"/versions/{version.id}", headers=bob.headers)).json()
        assert one["state"]["timeline"]["bpm"] == 94.0
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
    await ann.close()
