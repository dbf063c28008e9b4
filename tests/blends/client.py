"""A blend-room client for the tests: the rooms protocol plus the blend reducer, client side.

It keeps the room's state the way a real client would: the welcome's snapshot, then every
batch (others' as ``batch`` messages, its own when their ``ack`` arrives) through the same
pure reducer the server uses.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from rooms.kinds import SERVER_USER_ID, Actor
from server.blends.room import BlendOp, BlendRoom, BlendRoomState
from tests.rooms.client import Client, join

KIND = BlendRoom()
_ops = msgspec.json.Decoder(list[BlendOp])


class BlendClient:
    def __init__(self, client: Client) -> None:
        self.client = client
        welcome = client.welcome
        self.user_id = uuid.UUID(welcome["user_id"])
        self.state = msgspec.convert(welcome["state"], BlendRoomState)
        self.present = {m["user_id"] for m in welcome["members"]}
        self._mine: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    async def connect(cls, base_ws: str, blend_id: str, token: str) -> BlendClient:
        return cls(await join(base_ws, uuid.UUID(blend_id), token, kind="blend"))

    def _actor(self, author: uuid.UUID) -> Actor:
        if author == SERVER_USER_ID:
            return Actor(user_id=author, role="server")
        return Actor(user_id=author, role="owner" if author == self.state.owner_id else "member")

    def _apply(self, author: uuid.UUID, ops: Any) -> None:
        decoded = _ops.decode(msgspec.json.encode(ops))
        self.state = KIND.apply_batch(self.state, decoded, self._actor(author))

    async def recv(self, within: float = 15.0) -> dict[str, Any]:
        message = await self.client.recv(within)
        kind = message["type"]
        if kind == "batch":
            self._apply(uuid.UUID(message["author"]), message["ops"])
        elif kind == "ack" and message["op_id"] in self._mine:
            self._apply(self.user_id, self._mine.pop(message["op_id"]))
        elif kind == "error" and message.get("op_id") in self._mine:
            self._mine.pop(message["op_id"])
        elif kind == "joined":
            self.present.add(message["member"]["user_id"])
        elif kind == "ping":
            await self.client.send({"type": "pong"})
        return message

    async def until(self, predicate: Any, within: float = 20.0) -> dict[str, Any]:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            message = await self.recv(max(0.01, deadline - loop.time()))
            if predicate(message):
                return message

    async def until_state(self, predicate: Any, within: float = 20.0) -> None:
        if predicate(self.state):
            return
        await self.until(lambda _: predicate(self.state), within)

    async def send_ops(self, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """Send a batch and wait for its answer: the ack or the error."""
        op_id = uuid.uuid4().hex
        self._mine[op_id] = ops
        await self.client.send({"type": "ops", "op_id": op_id, "ops": ops})
        return await self.until(lambda m: m["type"] in ("ack", "error") and m.get("op_id") == op_id)

    async def close(self) -> None:
        await self.client.close()
