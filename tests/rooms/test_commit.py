"""The group commit (``store.commit_many``) against the real PostgreSQL, replicas in memory.

Two replicas of one room stand for the same room on two server processes: each commits
what its members sent, and neither hears the other (no pub/sub here), so each learns the
other's batches only from the database. What must hold: one total order in ``room_ops``
with no gap and no duplicate, every batch answered once (its seq, the original seq of a
re-sent op id, or a rejection that consumes no seq), each replica's state the state of the
log, and a replica that lost the race to the other catches up and commits on the
one-statement fast path instead of taking the row lock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from rooms import store
from rooms.kinds import Actor
from tests.rooms.notes import Add, NotesKind, NotesState, Title
from tests.support import Backends

KIND = NotesKind()


@pytest.fixture
async def pool(backends: Backends) -> AsyncIterator[asyncpg.Pool]:
    made = await asyncpg.create_pool(backends.database_url, min_size=1, max_size=6)
    yield made
    await made.close()


async def new_room(pool: asyncpg.Pool) -> uuid.UUID:
    room = uuid.uuid4()
    assert await store.ensure_room(pool, KIND.name, room)
    return room


def replica(room: uuid.UUID) -> store.Detached:
    """A room's in-memory copy on one "process", loaded at seq 0."""
    return store.Detached(KIND, room, seq=0, loaded=True, state=KIND.initial_state())


def pending(actor: Actor, op_id: str, *ops: Any) -> store.Pending:
    return store.Pending(actor, op_id, list(ops), store.encode_ops(list(ops)))


async def commit(
    pool: asyncpg.Pool,
    copy: store.Detached,
    batch: Sequence[store.Pending],
    paths: dict[str, int] | None = None,
) -> list[store.Entry]:
    """Commit ``batch`` and apply the outcome to ``copy`` as the room's committer does."""
    (outcome,) = await store.commit_many(pool, [(copy, batch)], paths)
    assert not isinstance(outcome, BaseException), outcome
    state, entries = outcome
    if entries:
        assert copy.seq == entries[0].seq - 1
        copy.state, copy.seq = state, entries[-1].seq
    return entries


async def logged(pool: asyncpg.Pool, room: uuid.UUID) -> list[tuple[int, str]]:
    rows = await pool.fetch("SELECT seq, op_id FROM room_ops WHERE room_id = $1 ORDER BY seq", room)
    return [(row["seq"], row["op_id"]) for row in rows]


async def test_a_replica_behind_commits_on_the_retried_fast_path(pool: asyncpg.Pool) -> None:
    room = await new_room(pool)
    here, there = replica(room), replica(room)
    ann, bob = Actor(uuid.uuid4(), "editor"), Actor(uuid.uuid4(), "editor")
    # The other process commits two batches; this one hears of neither.
    await commit(pool, there, [pending(bob, "b1", Add("n1", "a5", "one"))])
    await commit(pool, there, [pending(bob, "b2", Title("by bob"))])
    batch = [
        pending(ann, "a1", Add("n1", "a1", "clash")),  # note n1 exists once caught up
        pending(ann, "a2", Add("n2", "a2", "two")),
        pending(bob, "b2", Title("re-sent")),  # bob's re-send, through this process
    ]
    paths: dict[str, int] = {}
    entries = await commit(pool, here, batch, paths)
    assert paths == {"fast": 0, "fast_retry": 1, "locked": 0}
    # Caught up, then validated on the new state: the clash is rejected and takes no seq,
    # the re-send gets its original seq, the next batch follows the other process's.
    rejected = batch[0].rejected
    assert rejected is not None and rejected.code == "conflict" and batch[0].seq is None
    assert (batch[1].seq, batch[1].duplicate) == (3, False)
    assert (batch[2].seq, batch[2].duplicate) == (2, True)
    assert [(e.seq, e.op_id) for e in entries] == [(3, "a2")]
    assert await logged(pool, room) == [(1, "b1"), (2, "b2"), (3, "a2")]
    state = here.state
    assert isinstance(state, NotesState)
    assert state.title == "by bob" and sorted(state.notes) == ["n1", "n2"]
    assert state.notes["n1"].text == "one"
    assert (await store.load(pool, KIND, room)) == (3, state)


async def test_a_batch_the_other_process_committed_is_answered_with_its_seq(
    pool: asyncpg.Pool,
) -> None:
    room = await new_room(pool)
    here, there = replica(room), replica(room)
    ann = Actor(uuid.uuid4(), "editor")
    # ann's batch was committed through the other process (she reconnected there and
    # re-sent it); this process still has it queued.
    await commit(pool, there, [pending(ann, "a1", Title("once"))])
    paths: dict[str, int] = {}
    again = pending(ann, "a1", Title("once"))
    assert await commit(pool, here, [again], paths) == []
    assert (again.seq, again.duplicate, again.rejected) == (1, True, None)
    assert paths["locked"] == 0
    assert await logged(pool, room) == [(1, "a1")]
    assert here.seq == 1 and here.state == there.state


async def test_two_replicas_committing_at_once_keep_one_gapless_order(
    pool: asyncpg.Pool,
) -> None:
    room = await new_room(pool)
    copies = [replica(room), replica(room)]
    actors = [Actor(uuid.uuid4(), "editor"), Actor(uuid.uuid4(), "editor")]
    answered: list[list[store.Pending]] = [[], []]
    paths: dict[str, int] = {}

    async def writer(n: int) -> None:
        for i in range(40):
            batch = [pending(actors[n], f"{n}-{i}-{j}", Title(f"{n}-{i}-{j}")) for j in range(3)]
            # Every third batch re-sends one of the writer's earlier op ids.
            if i % 3 == 2:
                batch.append(pending(actors[n], f"{n}-{i - 1}-0", Title("re-sent")))
            await commit(pool, copies[n], batch, paths)
            answered[n].extend(batch)
            await asyncio.sleep(0)

    await asyncio.gather(writer(0), writer(1))
    log = await logged(pool, room)
    total = 2 * 40 * 3
    assert [seq for seq, _ in log] == list(range(1, total + 1))
    assert len({op_id for _, op_id in log}) == total
    seq_of = {op_id: seq for seq, op_id in log}
    for batches in answered:
        for p in batches:
            assert p.rejected is None and p.seq == seq_of[p.op_id]
            assert p.duplicate == (p.ops[0].title == "re-sent")
    # Each replica holds the state of the log at its seq (it learnt the other's batches
    # from the database only).
    for copy in copies:
        entries = await store.fetch_entries(pool, room, 0, copy.seq)
        assert copy.state == store.replay(KIND, KIND.initial_state(), entries)
