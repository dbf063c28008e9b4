"""Done-when: a member asks for a generated draft; everyone sees it arrive and edits it.

Alice (owner) and Bob (editor) are in the mashup's room on two server processes. Alice asks
for a generation on process A; both see its progress, then the same generated timeline as
ONE batch, then the rendered output; Bob edits the draft at once. Generating again gives
another draft. A generation that cannot be made fails and says why. Bad requests get their
documented problem codes and change nothing.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import msgspec
import numpy as np
import pytest
from pedalboard.io import AudioFile

from dsp.arrange import ArrangeInput, arrange
from dsp.structure import Structure
from dsp.timeline import timeline_duration_seconds
from tests import support
from tests.mashups.generation_support import song, store_structure, stored_structure, tempoless
from tests.mashups.support import (
    MashupClient,
    create_mashup,
    join_by_code,
    upload_track,
)
from tests.support import ServerProcess, assert_problem, make_user


@pytest.fixture
async def clients(
    pair: tuple[ServerProcess, ServerProcess],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        yield on_a, on_b


async def add_song(
    http: httpx.AsyncClient,
    db: asyncpg.Connection,
    user: support.TestUser,
    mashup_id: str,
    name: str,
    *,
    structured: bool = True,
    **shape: Any,
) -> tuple[str, Structure]:
    """Upload a synthetic song, let the upload worker analyse it, offer it to the mashup;
    its id and the structure the analysis stored (``structured=False`` removes it)."""
    data, truth = song(**shape)
    upload = await upload_track(http, user, data, name)
    found = await stored_structure(db, upload["id"])
    # The analysis reads the song as it was made (the generation depends on it).
    assert truth.bpm is not None and found.bpm is not None
    assert abs(found.bpm - truth.bpm) < 1.0, (found.bpm, truth.bpm)
    if not structured:
        await store_structure(db, upload["id"], None)
    added = await http.post(
        f"/mashups/{mashup_id}/inputs",
        json={"uploaded_track_id": upload["id"]},
        headers=user.headers,
    )
    assert added.status_code == 201, added.text
    return upload["id"], found


async def until_generation_done(member: MashupClient, job_id: str) -> Any:
    def done(state: Any) -> bool:
        g = state.generation
        return g is not None and g.id == job_id and g.status in ("completed", "failed")

    await member.until_state(done, within=120)
    return member.state.generation


# The first test of the package also starts the pair of processes, then renders twice.
@pytest.mark.timeout(240)
async def test_two_members_see_one_generated_batch_and_edit_it(
    pair: tuple[ServerProcess, ServerProcess],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    db: asyncpg.Connection,
) -> None:
    a, b = pair
    on_a, on_b = clients
    alice, bob = await make_user(db), await make_user(db)
    created = await create_mashup(on_a, alice, "Generated", 60)
    mashup_id = created["id"]
    await join_by_code(on_b, bob, created["share_code"]["code"])
    drums_id, drums = await add_song(on_a, db, alice, mashup_id, "a.wav", bpm=120.0)
    keys_id, keys = await add_song(
        on_b,
        db,
        bob,
        mashup_id,
        "b.wav",
        bpm=123.0,
        root_hz=329.6,
        key="E minor",
        sections=((4, 0.5), (8, 1.0)),
    )
    alice_room = await MashupClient.connect(a.ws_url, mashup_id, alice.token)
    bob_room = await MashupClient.connect(b.ws_url, mashup_id, bob.token)
    for member in (alice_room, bob_room):
        await member.until_state(lambda s: len(s.inputs) == 2)

    asked = await on_a.post(
        f"/mashups/{mashup_id}/generate",
        json={"seed": 11, "target_seconds": 16},
        headers=alice.headers,
    )
    assert asked.status_code == 202, asked.text
    accepted = asked.json()
    job_id = accepted["id"]
    assert accepted == {
        "id": job_id,
        "mashup_id": mashup_id,
        "seed": 11,
        "target_seconds": 16,
        "layering": True,
        "requested_by": str(alice.id),
        "status": "pending",
    }

    finals = [await until_generation_done(m, job_id) for m in (alice_room, bob_room)]
    assert finals[0] == finals[1]
    final = finals[0]
    assert final.status == "completed", final.detail
    assert (final.stage, final.progress, final.seed) == ("done", 1.0, 11)
    assert final.url == f"/mashups/{mashup_id}/export"
    assert alice_room.state.timeline == bob_room.state.timeline

    # Both saw the same batches: progress, then the timeline as ONE batch, then completion.
    assert alice_room.generation_batches == bob_room.generation_batches
    stages = [
        op["generation"]["stage"]
        for _, ops in alice_room.generation_batches
        for op in ops
        if op["op"] == "generation"
    ]
    assert stages[-1] == "done" and "rendering" in stages and "arranging" in stages
    placing = [ops for _, ops in alice_room.generation_batches if ops[0]["op"] == "generated"]
    assert len(placing) == 1
    generated = placing[0][0]
    assert generated["generation_id"] == job_id
    assert [c["id"] for c in generated["timeline"]["clips"]] == [
        c.id for c in alice_room.state.timeline.clips
    ]

    # The draft is what the arranger makes of the analysed inputs with this seed; the plan
    # says why.
    expected = arrange(
        [
            ArrangeInput(track_id=drums_id, structure=drums),
            ArrangeInput(track_id=keys_id, structure=keys),
        ],
        16.0,
        11,
    )
    assert alice_room.state.timeline == expected.timeline
    assert final.plan == expected.plan
    assert abs(timeline_duration_seconds(expected.timeline) - 16) <= 240 / expected.plan.bpm

    # The rendered output is served to members and recorded as the mashup's output.
    served = await on_b.get(final.url, headers=bob.headers)
    assert served.status_code == 200 and served.headers["content-type"] == "audio/flac"
    with AudioFile(io.BytesIO(served.content)) as f:
        seconds = f.frames / f.samplerate
        samples = f.read(f.frames)
    assert seconds == pytest.approx(expected.plan.duration_seconds, abs=0.05)
    assert float(np.sqrt(np.mean(samples**2))) > 0.05
    row = await db.fetchrow(
        "SELECT m.generation_status::text AS status, m.output_storage_key AS key,"
        " j.status::text AS job, j.attempts, j.plan::text AS plan"
        " FROM mashups m JOIN mashup_generation_jobs j ON j.mashup_id = m.id WHERE j.id = $1",
        uuid.UUID(job_id),
    )
    assert row is not None
    assert (row["status"], row["job"], row["attempts"]) == ("completed", "completed", 1)
    assert row["key"].endswith(f"{uuid.UUID(job_id).hex}.flac")
    assert msgspec.json.decode(row["plan"]) == msgspec.to_builtins(expected.plan)
    assert alice_room.state.export is not None and alice_room.state.export.id == job_id
    detail = (await on_b.get(f"/mashups/{mashup_id}", headers=bob.headers)).json()
    assert detail["generation_status"] == "completed"
    assert detail["generation"]["status"] == "completed" and detail["generation"]["id"] == job_id
    assert detail["generation"]["plan"]["seed"] == 11

    # Members cannot send the server's generation ops themselves.
    refused = await bob_room.send_ops([placing[0][0]])
    assert (refused["type"], refused["code"]) == ("error", "forbidden"), refused
    refused = await bob_room.send_ops([placing[0][1]])
    assert (refused["type"], refused["code"]) == ("error", "forbidden"), refused

    # Bob edits the draft at once; Alice sees it.
    first = alice_room.state.timeline.clips[0].id
    moved = await bob_room.send_ops([{"op": "set_clip", "clip": first, "gain_db": -3}])
    assert moved["type"] == "ack", moved
    await alice_room.until_state(
        lambda s: s.timeline.clips[0].id == first and s.timeline.clips[0].gain_db == -3.0
    )

    # Generating again without a seed gives the next seed and another draft.
    again = await on_b.post(f"/mashups/{mashup_id}/generate", headers=bob.headers)
    assert again.status_code == 202, again.text
    assert again.json()["seed"] == 12 and again.json()["target_seconds"] == 60
    second = await until_generation_done(alice_room, again.json()["id"])
    assert second.status == "completed", second.detail
    assert second.plan is not None and second.plan.seed == 12
    assert alice_room.state.timeline != expected.timeline
    await bob_room.until_state(lambda s: s.timeline == alice_room.state.timeline)
    # The new output replaced the old one in storage.
    keys_now = await db.fetchval(
        "SELECT output_storage_key FROM mashups WHERE id = $1", uuid.UUID(mashup_id)
    )
    assert keys_now != row["key"]
    for member in (alice_room, bob_room):
        await member.close()


async def test_a_generation_that_cannot_be_made_says_why_and_changes_no_timeline(
    pair: tuple[ServerProcess, ServerProcess],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    db: asyncpg.Connection,
) -> None:
    a, _ = pair
    on_a, _ = clients
    alice = await make_user(db)
    mashup_id = (await create_mashup(on_a, alice, "No beat", 20))["id"]
    upload_id, structure = await add_song(on_a, db, alice, mashup_id, "pad.wav")
    await store_structure(db, upload_id, tempoless(structure))
    room = await MashupClient.connect(a.ws_url, mashup_id, alice.token)
    before = room.state.timeline

    asked = await on_a.post(f"/mashups/{mashup_id}/generate", json={}, headers=alice.headers)
    assert asked.status_code == 202, asked.text
    final = await until_generation_done(room, asked.json()["id"])
    assert final.status == "failed" and final.stage == "failed"
    assert "no input has a usable tempo" in final.detail
    assert room.state.timeline == before
    assert not [ops for _, ops in room.generation_batches if ops[0]["op"] == "generated"]
    row = await db.fetchrow(
        "SELECT m.generation_status::text AS status, j.status::text AS job, j.detail"
        " FROM mashups m JOIN mashup_generation_jobs j ON j.mashup_id = m.id WHERE m.id = $1",
        uuid.UUID(mashup_id),
    )
    assert row is not None
    assert (row["status"], row["job"]) == ("failed", "failed")
    assert "usable tempo" in row["detail"]
    detail = (await on_a.get(f"/mashups/{mashup_id}", headers=alice.headers)).json()
    assert detail["generation"]["status"] == "failed"
    assert "usable tempo" in detail["generation"]["detail"]
    await room.close()


async def _snapshot(db: asyncpg.Connection, mashup_id: str) -> tuple[Any, ...]:
    mid = uuid.UUID(mashup_id)
    return (
        await db.fetchval("SELECT count(*) FROM mashup_generation_jobs WHERE mashup_id = $1", mid),
        await db.fetchval("SELECT generation_status::text FROM mashups WHERE id = $1", mid),
        await db.fetchval("SELECT seq FROM rooms WHERE id = $1", mid),
    )


async def test_bad_requests_get_their_codes_and_change_nothing(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], db: asyncpg.Connection
) -> None:
    on_a, _ = clients
    owner, viewer, stranger = [await make_user(db) for _ in range(3)]
    created = await create_mashup(on_a, owner, "Refusals", 30)
    mashup_id = created["id"]
    url = f"/mashups/{mashup_id}/generate"
    await join_by_code(on_a, viewer, created["share_code"]["code"])
    demoted = await on_a.put(
        f"/mashups/{mashup_id}/members/{viewer.id}",
        json={"role": "viewer"},
        headers=owner.headers,
    )
    assert demoted.status_code == 200

    # No inputs yet.
    before = await _snapshot(db, mashup_id)
    assert_problem(await on_a.post(url, headers=owner.headers), 409, "no_inputs")
    assert await _snapshot(db, mashup_id) == before

    # An input whose analysis has no structure (bars and sections) yet.
    upload_id, structure = await add_song(on_a, db, owner, mashup_id, "x.wav", structured=False)
    before = await _snapshot(db, mashup_id)
    body = assert_problem(await on_a.post(url, headers=owner.headers), 409, "inputs_not_analysed")
    assert "x.wav" in body["detail"]
    await store_structure(db, upload_id, structure)

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"headers": viewer.headers}, 403, "forbidden"),
        ({"headers": stranger.headers}, 404, "not_found"),
        ({}, 401, "unauthenticated"),
        ({"headers": owner.headers, "json": {"seed": -1}}, 400, "invalid_request"),
        ({"headers": owner.headers, "json": {"seed": 2**53}}, 400, "invalid_request"),
        ({"headers": owner.headers, "json": {"target_seconds": 0}}, 400, "invalid_request"),
        ({"headers": owner.headers, "json": {"target_seconds": 1201}}, 400, "invalid_request"),
        ({"headers": owner.headers, "json": {"layering": "yes"}}, 400, "invalid_request"),
        ({"headers": owner.headers, "json": {"style": "club"}}, 400, "invalid_request"),
        ({"headers": owner.headers, "json": [1, 2]}, 400, "invalid_request"),
        (
            {"headers": {**owner.headers, "content-type": "application/json"}, "content": b"{"},
            400,
            "invalid_request",
        ),
        (
            {"headers": owner.headers, "json": {"seed": 1, "pad": "x" * 2_000_000}},
            413,
            "too_large",
        ),
    ]
    for kwargs, status, code in cases:
        assert_problem(await on_a.post(url, **kwargs), status, code)
    unknown = f"/mashups/{uuid.uuid4()}/generate"
    assert_problem(await on_a.post(unknown, headers=owner.headers), 404, "not_found")
    assert await _snapshot(db, mashup_id) == before

    # A target over the renderer's limit, carried by the mashup itself.
    await db.execute(
        "UPDATE mashups SET target_duration_seconds = 3000 WHERE id = $1", uuid.UUID(mashup_id)
    )
    assert_problem(await on_a.post(url, headers=owner.headers), 409, "target_too_long")
    assert await _snapshot(db, mashup_id) == before

    # One generation at a time: a job no process here can take (another storage) holds it.
    await db.execute(
        "INSERT INTO mashup_generation_jobs (mashup_id, seed, target_seconds, storage_scope)"
        " VALUES ($1, 1, 10, 'local:/elsewhere')",
        uuid.UUID(mashup_id),
    )
    before = await _snapshot(db, mashup_id)
    assert_problem(
        await on_a.post(url, json={"target_seconds": 10}, headers=owner.headers),
        409,
        "generation_in_progress",
    )
    assert await _snapshot(db, mashup_id) == before


async def test_the_endpoint_and_its_errors_are_documented(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    on_a, _ = clients
    document = (await on_a.get("/schema/openapi.json")).json()
    operation = document["paths"]["/mashups/{mashup_id}/generate"]["post"]
    assert {"202", "400", "401", "403", "404", "409", "413"} <= set(operation["responses"])
    for status, spec in operation["responses"].items():
        if int(status) >= 400:
            content = spec["content"]["application/problem+json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ProblemDetail"}
    described = operation["responses"]["409"]["description"]
    for code in ("no_inputs", "inputs_not_analysed", "target_too_long", "generation_in_progress"):
        assert code in described
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body is not None
