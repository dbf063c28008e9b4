"""A protocol client for the rooms tests, written from docs/protocol.md."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

TIMEOUT = 15.0


class Client:
    """One member connection; keeps what it saw so tests can compare."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.seq: int = welcome["seq"]
        self.member_id: str = welcome["member_id"]
        self.batches: list[dict[str, Any]] = []  # others' batches, in arrival order
        self.acks: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self.seen: list[int] = []  # every seq, as batch or ack, in arrival order
        self.other: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def ops(self, ops: list[dict[str, Any]], op_id: str | None = None) -> str:
        op_id = op_id or uuid.uuid4().hex
        await self.send({"type": "ops", "op_id": op_id, "ops": ops})
        return op_id

    async def recv(self, within: float = TIMEOUT) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), within))
        kind = message["type"]
        if kind == "batch":
            self.batches.append(message)
            self.seen.append(message["seq"])
            self.seq = message["seq"]
        elif kind == "ack":
            self.acks[message["op_id"]] = message
            if not message.get("duplicate"):
                self.seen.append(message["seq"])
                self.seq = message["seq"]
        elif kind == "error":
            self.errors.append(message)
        else:
            self.other.append(message)
        return message

    async def until(self, predicate: Any, within: float = TIMEOUT) -> dict[str, Any]:
        """Read until a message satisfies ``predicate``; return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            message = await self.recv(max(0.01, deadline - loop.time()))
            if predicate(message):
                return message

    async def ack(self, op_id: str) -> dict[str, Any]:
        if op_id in self.acks:
            return self.acks[op_id]
        return await self.until(lambda m: m.get("op_id") == op_id and m["type"] in ("ack", "error"))

    async def until_seq(self, seq: int) -> None:
        while self.seq < seq:
            await self.recv()

    async def closed(self, within: float = TIMEOUT) -> int | None:
        """Read until the server closes; the close code."""
        try:
            while True:
                await self.recv(within)
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def close(self) -> None:
        await self.ws.close()


async def open_ws(
    base: str, kind: str, room_id: uuid.UUID | str, **kwargs: Any
) -> ClientConnection:
    return await websockets.connect(f"{base}/rooms/{kind}/{room_id}", **kwargs)


async def join(
    base: str,
    room_id: uuid.UUID,
    token: str,
    *,
    last_seq: int | None = None,
    kind: str = "notes",
    **kwargs: Any,
) -> Client:
    ws = await open_ws(base, kind, room_id, **kwargs)
    hello: dict[str, Any] = {"type": "hello", "v": 1, "token": token}
    if last_seq is not None:
        hello["last_seq"] = last_seq
    await ws.send(json.dumps(hello))
    welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert welcome["type"] == "welcome", welcome
    client = Client(ws, welcome)
    if welcome["resumed"]:
        # The batches after last_seq follow the welcome.
        assert last_seq is not None
        client.seq = last_seq
    return client


async def close_code(ws: ClientConnection, within: float = TIMEOUT) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
