"""A join burst into one big room: 2,000 members, two processes, one client process.

Before roster changes were coalesced per tick (protocol version 2's ``members``), every join
was one ``joined`` message to every member already there: 2,000 joins made about two million
messages and overflowed the send queues of members that did not read fast enough (4409).
"""

from __future__ import annotations

import asyncio
import resource
import uuid
from typing import Any

import msgspec

from loadtest.client import WsClient, connect
from tests.rooms.conftest import Rooms, StartRoomServer
from tests.support import eventually

MEMBERS = 2_000
CONCURRENT_HANDSHAKES = 200
BIG_ROOM = {
    "BLENDTUNE_WS_ROOM_MAX_MEMBERS": str(MEMBERS + 10),
    # One client process opens every connection: give it the default time for its hellos.
    "BLENDTUNE_WS_AUTH_TIMEOUT_SECONDS": "5",
}

_decoder = msgspec.json.Decoder()


def enough_descriptors(needed: int) -> None:
    """One client process holds every connection: raise its descriptor limit (the servers,
    started after, inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= needed, "too few descriptors"


_seen: dict[bytes, tuple[frozenset[str], frozenset[str]] | None] = {}


def _changes(data: bytes | bytearray) -> tuple[frozenset[str], frozenset[str]] | None:
    """A ``members`` message's joined and left ids; None for other messages. Every member of
    a process gets the same bytes: decoded once, not once per member (the client shares the
    machine with the servers it tests)."""
    if not data.startswith(b'{"type":"members"'):
        return None
    key = bytes(data)  # (the client hands frames over as bytearray)
    found = _seen.get(key)
    if found is None:
        message = _decoder.decode(key)
        found = _seen[key] = (
            frozenset(m["id"] for m in message["joined"]),
            frozenset(message["left"]),
        )
    return found


class Member:
    """One connection that keeps its view of the roster as protocol version 2 tells it.

    The lean client of the load tester (frames handled in ``data_received``, no task per
    connection): one process holds every connection, on a machine it shares with the servers.
    """

    def __init__(self) -> None:
        self.id = ""
        self.view: set[str] = set()
        self.welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unexpected: list[str] = []  # joined/left are for version 1 clients only
        self.close_code: int | None = None
        self.ws: WsClient | None = None

    def on_text(self, data: bytes) -> None:
        change = _changes(data)
        if change is not None:
            self.view.update(change[0])
            self.view.difference_update(change[1])
            return
        message = _decoder.decode(data)
        kind = message["type"]
        if kind == "welcome":
            assert message["v"] == 2, message
            self.id = message["member_id"]
            self.view = {m["id"] for m in message["members"]}
            self.welcomed.set_result(None)
        elif kind in ("joined", "left"):
            self.unexpected.append(kind)
        elif kind == "ping" and self.ws is not None:
            self.ws.send_text(b'{"type":"pong"}')

    def on_close(self, code: int | None, reason: str) -> None:
        self.close_code = code or 1006
        if not self.welcomed.done():
            self.welcomed.set_exception(AssertionError(f"closed before the welcome: {code}"))


async def join(url: str, room: uuid.UUID, token: str, gate: asyncio.Semaphore) -> Member:
    member = Member()
    async with gate:
        member.ws = await connect(
            f"{url}/rooms/notes/{room}", member.on_text, member.on_close, open_timeout=60
        )
        member.ws.send_text(msgspec.json.encode({"type": "hello", "v": 2, "token": token}))
        await asyncio.wait_for(member.welcomed, 60)
    return member


async def test_two_thousand_members_join_one_room_in_a_burst(
    start_room_server: StartRoomServer, notes: Rooms
) -> None:
    enough_descriptors(MEMBERS + 500)
    a = await start_room_server(env=BIG_ROOM)
    b = await start_room_server(env=BIG_ROOM)
    users = [await notes.user() for _ in range(4)]
    room = await notes.create(*((user, "editor") for user in users))
    gate = asyncio.Semaphore(CONCURRENT_HANDSHAKES)
    # Every member joins at once, half on each process (their joins reach the other
    # process's members through Redis).
    members: list[Member] = await asyncio.gather(
        *(
            join((a, b)[i % 2].ws_url, room, users[i % len(users)].token, gate)
            for i in range(MEMBERS)
        )
    )
    try:
        everyone = {m.id for m in members}
        assert len(everyone) == MEMBERS

        async def converged() -> bool:
            closed = [m.close_code for m in members if m.close_code is not None]
            assert not closed, f"members were closed: {sorted(set(closed))}"  # 4409: overflow
            return all(m.view == everyone for m in members)

        await eventually(converged, within=90, interval=0.2, what="every view equal the roster")
        assert not any(m.unexpected for m in members)
        # A member who comes last is welcomed with exactly that roster, itself included.
        last = await join(a.ws_url, room, users[0].token, gate)
        assert last.view == everyone | {last.id}
        members.append(last)
        # And everyone hears of it (the first change after a quiet tick goes out at once).
        await eventually(
            lambda: _all(m.view == everyone | {last.id} for m in members),
            within=30,
            what="every view to include the last member",
        )
        assert all(m.close_code is None for m in members)
    finally:
        for m in members:
            if m.ws is not None:
                m.ws.close()


async def _all(values: Any) -> bool:
    return all(values)
