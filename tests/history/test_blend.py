"""History in a blend room, end to end: an undone rename on one process reaches the other,
and ``put_item`` (history batches only) is refused in a client's ``ops``."""

from __future__ import annotations

import uuid

import asyncpg

from tests.blends.client import BlendClient
from tests.blends.support import create_blend
from tests.history.support import client
from tests.support import ServerProcess, make_user


async def test_undo_in_a_blend_and_put_item_is_not_for_clients(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection
) -> None:
    a, b = pair
    owner = await make_user(db)
    async with client(a.url) as http:
        blend = await create_blend(http, owner, "Friday mix")
    first = await BlendClient.connect(a.ws_url, blend["id"], owner.token)
    second = await BlendClient.connect(b.ws_url, blend["id"], owner.token)
    await first.until_state(lambda s: s.name == "Friday mix")
    renamed = await first.send_ops([{"op": "rename", "name": "Saturday mix"}])
    assert renamed["type"] == "ack"

    op_id = uuid.uuid4().hex
    await first.client.send({"type": "undo", "op_id": op_id})
    undone = await first.until(lambda m: m.get("op_id") == op_id)
    assert undone["type"] == "ack", undone
    assert undone["ops"] == [{"op": "rename", "name": "Friday mix"}]
    assert undone["history"]["target"] == renamed["seq"]
    # The same user's other tab, on the other process, gets it as a batch of its own.
    seen = await second.until(lambda m: m["type"] == "batch" and m["seq"] == undone["seq"])
    assert seen["op_id"] == op_id
    assert second.state.name == "Friday mix"

    item = {
        "id": "forged", "index": "V", "contributed_by": str(owner.id),
        "contributors": [str(owner.id)],
        "song": {"key": "k", "track_id": "t", "name": "Forged", "artist": "Nobody"},
    }  # fmt: skip
    refused = await first.send_ops([{"op": "put_item", "item": item}])
    assert (refused["type"], refused["code"]) == ("error", "bad_ops")
    assert all(i.id != "forged" for i in first.state.items)
    await first.close()
    await second.close()
