"""Several processes on one PostgreSQL and one Redis: order, durability, presence."""

from __future__ import annotations

import asyncio

from tests.rooms.client import Client, join
from tests.rooms.conftest import Rooms, StartRoomServer
from tests.support import ServerProcess, eventually


def title(text: str) -> list[dict[str, str]]:
    return [{"op": "title", "title": text}]


def order(client: Client) -> dict[int, str]:
    """seq -> op id, from what the client received (others' batches and its own acks)."""
    seen = {batch["seq"]: batch["op_id"] for batch in client.batches}
    seen.update({ack["seq"]: op_id for op_id, ack in client.acks.items()})
    return seen


async def write(client: Client, prefix: str, count: int) -> None:
    for i in range(count):
        await client.ops(title(f"{prefix}{i}"), f"{prefix}{i}")
        if i % 5 == 4:
            await asyncio.sleep(0.01)


async def test_concurrent_writers_on_two_processes_see_one_order(
    pair: tuple[ServerProcess, ServerProcess], notes: Rooms
) -> None:
    a, b = pair
    users = [await notes.user() for _ in range(6)]
    room = await notes.create(*((user, "editor") for user in users))
    writers = [
        await join(server.ws_url, room, user.token)
        for server, user in zip((a, b, a, b), users, strict=False)
    ]
    readers = [
        await join(a.ws_url, room, users[4].token),
        await join(b.ws_url, room, users[5].token),
    ]
    per_writer = 25
    total = per_writer * len(writers)
    await asyncio.gather(*(write(w, f"w{i}-", per_writer) for i, w in enumerate(writers)))
    await asyncio.gather(*(client.until_seq(total) for client in writers + readers))

    expected = list(range(1, total + 1))
    reference = order(readers[0])
    for client in writers + readers:
        assert client.seen == expected  # in order, no gaps, no duplicates
        assert order(client) == reference  # the same batch at every seq
    assert all(not client.errors for client in writers)
    # The log agrees (older rows may already be pruned behind a snapshot).
    rows = await notes.ops(room)
    assert rows[-1]["seq"] == total
    assert all(reference[r["seq"]] == r["op_id"] for r in rows)
    for client in writers + readers:
        await client.close()


async def test_kill_after_ack_loses_nothing_and_presence_follows(
    start_room_server: StartRoomServer, notes: Rooms
) -> None:
    c = await start_room_server()
    d = await start_room_server()
    alice, bob = await notes.user(), await notes.user()
    room = await notes.create((alice, "editor"), (bob, "editor"))
    watcher = await join(d.ws_url, room, bob.token)
    writer = await join(c.ws_url, room, alice.token)
    await watcher.until(lambda m: m["type"] == "joined" and m["member"]["id"] == writer.member_id)
    op_id = await writer.ops([{"op": "add", "id": "keep", "index": "V", "text": "acked"}])
    ack = await writer.ack(op_id)
    assert ack["type"] == "ack"
    c.kill()  # SIGKILL right after the ack

    # The other process notices the dead process and announces its member's leave.
    left = await watcher.until(lambda m: m["type"] == "left", 20)
    assert left["id"] == writer.member_id
    # The acknowledged edit is in the room for whoever comes back, on the surviving process.
    back = await join(d.ws_url, room, alice.token, last_seq=0)
    await back.until_seq(ack["seq"])
    assert back.batches[-1]["op_id"] == op_id
    fresh = await join(d.ws_url, room, alice.token)
    assert fresh.welcome["state"]["notes"]["keep"]["text"] == "acked"
    assert writer.member_id not in {m["id"] for m in fresh.welcome["members"]}
    for client in (watcher, back, fresh):
        await client.close()


async def test_sigterm_tells_clients_to_reconnect_and_flushes(
    start_room_server: StartRoomServer, notes: Rooms
) -> None:
    c = await start_room_server()
    alice = await notes.user()
    room = await notes.create((alice, "editor"))
    client = await join(c.ws_url, room, alice.token)
    sent = [await client.ops(title(f"t{i}"), f"t{i}") for i in range(20)]
    code = asyncio.get_running_loop().run_in_executor(None, c.terminate)
    assert await client.closed() == 1012
    assert await code == 0
    rows = await notes.ops(room)
    # Everything acknowledged before the close is durable; the rest may be resent.
    assert set(client.acks) <= {r["op_id"] for r in rows} <= set(sent)


async def test_serve_with_workers(start_room_server: StartRoomServer, notes: Rooms) -> None:
    server = await start_room_server("--workers", "2")
    users = [await notes.user() for _ in range(2)]
    room = await notes.create(*((user, "editor") for user in users))
    clients: list[Client] = []
    processes: set[str] = set()

    # Workers share the listening socket and whichever is idle accepts: connect in bursts
    # until both workers serve some of our clients.
    async def both_serve() -> bool:
        burst = await asyncio.gather(
            *(join(server.ws_url, room, users[i % 2].token) for i in range(8))
        )
        for client in burst:
            if len(clients) < 12 or client.member_id.split(".")[0] not in processes:
                clients.append(client)
                processes.add(client.member_id.split(".")[0])
            else:
                await client.close()
        return len(processes) == 2

    await eventually(both_serve, interval=0.2, what="both workers serving clients")
    await asyncio.gather(*(write(client, f"c{i}-", 5) for i, client in enumerate(clients)))
    total = 5 * len(clients)
    await asyncio.gather(*(client.until_seq(total) for client in clients))
    reference = order(clients[0])
    for client in clients:
        assert client.seen == list(range(1, total + 1))
        assert order(client) == reference
        await client.close()
    assert await notes.seq(room) == total
