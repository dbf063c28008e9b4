"""Many blends woven at once never take the database pool from requests (issue #11).

Ten or more blends woven at once used to hang every database-backed request: each weave
held a pool connection while the room commit waited for another, and the pool's ten
connections were all held by weaves waiting on each other. These tests drive the exact
sequence that hung a fresh server, and the periodic scan with a user in many blends, on the
default pool size, while other requests must keep answering.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid

import asyncpg
import httpx

from tests.blends.support import create_blend, import_taste, songs
from tests.conftest import StartServer
from tests.support import TestUser, eventually, make_user, new_address

BLENDS = 12  # more than the pool's ten connections


async def _all_woven(
    db: asyncpg.Connection, blend_ids: list[uuid.UUID], since: datetime.datetime
) -> bool:
    done = await db.fetchval(
        "SELECT count(*) FROM blends WHERE id = ANY($1) AND status = 'completed'"
        " AND completed_at > $2",
        blend_ids,
        since,
    )
    return bool(done == len(blend_ids))


async def _answers(client: httpx.AsyncClient, user: TestUser, blend_ids: list[uuid.UUID]) -> None:
    """Requests that need the database answer while the weaves run."""
    whoami = await client.get("/auth/whoami", headers=user.headers)
    assert whoami.status_code == 200, whoami.text
    listed = await client.get("/blends", headers=user.headers)
    assert listed.status_code == 200, listed.text
    details = await asyncio.gather(
        *(client.get(f"/blends/{b}", headers=user.headers) for b in blend_ids[:5])
    )
    assert [d.status_code for d in details] == [200] * 5
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_the_sequence_that_hung_the_server(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server()
    headers = {"X-Forwarded-For": new_address()}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers) as client:
        user = await make_user(db)
        await import_taste(client, user, songs("pool", 10))
        blend_ids = [
            uuid.UUID((await create_blend(client, user, f"Mix {n}"))["id"]) for n in range(BLENDS)
        ]
        # Re-importing a range marks every blend of the user pending and wakes all weaves.
        since = await db.fetchval("SELECT now()")
        again = await client.put(
            "/taste/connections/spotify/top-tracks/medium_term",
            json={"tracks": songs("pool", 10, start=3)},
            headers=user.headers,
        )
        assert again.status_code == 200, again.text
        await _answers(client, user, blend_ids)
        await eventually(lambda: _all_woven(db, blend_ids, since), what="every blend woven")
        tracks = await db.fetchval(
            "SELECT count(DISTINCT blend_id) FROM blend_tracks WHERE blend_id = ANY($1)", blend_ids
        )
        assert tracks == BLENDS
        # The fuzzer's way in: forgetting a connection wakes every weave too.
        since = await db.fetchval("SELECT now()")
        gone = await client.delete("/taste/connections/spotify", headers=user.headers)
        assert gone.status_code == 204, gone.text
        await _answers(client, user, blend_ids)
        await eventually(lambda: _all_woven(db, blend_ids, since), what="every blend rewoven")
        await _answers(client, user, blend_ids)


async def test_the_scan_weaves_many_blends_while_requests_answer(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server(env={"BLENDTUNE_BLEND_SCAN_SECONDS": "0.2"})
    headers = {"X-Forwarded-For": new_address()}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers) as client:
        user = await make_user(db)
        await import_taste(client, user, songs("scan", 10))
        blend_ids = [
            uuid.UUID((await create_blend(client, user, f"Scan {n}"))["id"]) for n in range(20)
        ]
        since = datetime.datetime.fromtimestamp(0, datetime.UTC)
        await eventually(lambda: _all_woven(db, blend_ids, since), what="every blend woven")
        # All due at once, as after a day: only the scan finds them (nothing kicks it).
        await db.execute(
            "UPDATE blends SET status = 'completed', completed_at = now() - interval '2 days'"
            " WHERE id = ANY($1)",
            blend_ids,
        )
        before = await db.fetchval(
            "SELECT max(completed_at) FROM blends WHERE id = ANY($1)", blend_ids
        )

        async def rewoven() -> bool:
            oldest = await db.fetchval(
                "SELECT min(completed_at) FROM blends WHERE id = ANY($1)", blend_ids
            )
            return bool(oldest > before)

        async def answering_while_rewoven() -> bool:
            await _answers(client, user, blend_ids)
            return await rewoven()

        await eventually(answering_while_rewoven, what="every blend woven again by the scan")
