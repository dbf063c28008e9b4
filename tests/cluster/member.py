"""A room member that recovers the way docs/protocol.md tells clients to ("What a client does").

It reconnects after 4409 (resync), 1012, 1013 and lost connections, resumes with ``last_seq``,
resends every unacknowledged batch with its original op id, and checks the stream as it goes:
every batch or ack must be exactly one above the last seq it applied. What it saw (seq -> op
id) is kept so tests can compare members with each other and with the op log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

# Close codes after which the protocol says "reconnect" (and 1006: the connection was lost).
RECONNECT = {1006, 1011, 1012, 1013, 4408, 4409}


class Member:
    def __init__(self, base: str, room: uuid.UUID, token: str, kind: str = "notes") -> None:
        self.url = f"{base}/rooms/{kind}/{room}"
        self.token = token
        self.seq: int | None = None
        self.log: dict[int, str] = {}  # seq -> op id, for every batch and ack applied
        self.pending: dict[str, list[dict[str, Any]]] = {}  # op id -> ops, not yet acked
        self.acked: dict[str, int] = {}  # op id -> seq
        self.problems: list[str] = []  # stream violations (must stay empty)
        self.closes: list[int | None] = []  # every close code the server sent
        self.resumed_welcomes = 0
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._welcomed = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._welcomed.wait(), 30)

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def write(self, ops: list[dict[str, Any]], op_id: str | None = None) -> str:
        """Queue a batch; it is sent now if connected, else after the next welcome."""
        op_id = op_id or uuid.uuid4().hex
        self.pending[op_id] = ops
        ws = self._ws
        if ws is not None and self._welcomed.is_set():
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(json.dumps({"type": "ops", "op_id": op_id, "ops": ops}))
        return op_id

    async def until(self, check: Callable[[], bool], within: float = 60.0) -> None:
        """Wait until ``check()`` holds, re-checking after every message."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not check():
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"member at seq {self.seq} ({len(self.pending)} pending, closes "
                    f"{self.closes}, problems {self.problems[:3]}) did not get there in time"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def until_acked(self, op_id: str) -> None:
        await self.until(lambda: op_id in self.acked)

    async def until_settled(self, seq: int) -> None:
        """Wait until this member has applied up to ``seq`` and has nothing unacknowledged."""
        await self.until(lambda: self.seq == seq and not self.pending)

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                async with websockets.connect(self.url, open_timeout=10) as ws:
                    self._ws = ws
                    hello: dict[str, Any] = {"type": "hello", "v": 1, "token": self.token}
                    if self.seq is not None:
                        hello["last_seq"] = self.seq
                    await ws.send(json.dumps(hello))
                    async for raw in ws:
                        if self._receive(json.loads(raw)):
                            backoff = 0.05
                            # Resend what is unacknowledged, with the same op ids.
                            for op_id, ops in list(self.pending.items()):
                                await ws.send(
                                    json.dumps({"type": "ops", "op_id": op_id, "ops": ops})
                                )
                        self._changed.set()
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                self.closes.append(code)
                if code not in RECONNECT:
                    self.problems.append(f"closed with {code}")
                    return
            except (TimeoutError, OSError):
                self.closes.append(None)
            finally:
                self._ws = None
                self._welcomed.clear()
                self._changed.set()
            # Backoff as the protocol asks (a restarting server is not stampeded).
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _receive(self, message: dict[str, Any]) -> bool:
        """Apply one message; True for a welcome."""
        kind = message["type"]
        if kind == "welcome":
            if message["resumed"]:
                self.resumed_welcomes += 1
            else:
                if self.seq is not None and message["seq"] < self.seq:
                    self.problems.append(f"snapshot at {message['seq']} behind {self.seq}")
                self.seq = message["seq"]
            self._welcomed.set()
            return True
        if kind == "batch":
            self._apply(message["seq"], message["op_id"])
        elif kind == "ack":
            op_id = message["op_id"]
            if op_id in self.pending:
                self.pending.pop(op_id)
                self.acked[op_id] = message["seq"]
            if not message.get("duplicate"):
                self._apply(message["seq"], op_id)
        elif kind == "error" and message.get("op_id") in self.pending:
            self.problems.append(f"rejected: {message}")
        return False

    def _apply(self, seq: int, op_id: str) -> None:
        if self.seq is not None and seq != self.seq + 1:
            self.problems.append(f"seq {seq} after {self.seq}")
        self.seq = seq
        self.log[seq] = op_id
