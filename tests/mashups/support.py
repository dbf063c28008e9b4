"""Helpers for the mashup tests: real audio, uploads through REST, a room client."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import httpx
import msgspec
import numpy as np
from pedalboard.io import AudioFile

from dsp.effects import Reverb, build_board
from rooms.kinds import SERVER_USER_ID, Actor
from server.mashups.room import MashupOp, MashupRoom, MashupRoomState
from tests.rooms.client import Client, join
from tests.support import TestUser, eventually

RATE = 44100
KIND = MashupRoom()
PROBLEM = "application/problem+json"
_ops = msgspec.json.Decoder(list[MashupOp])


def loop_wav(seconds: float = 6.0, bpm: float = 120.0, pitch_hz: float = 220.0) -> bytes:
    """A real WAV file: kicks on the beat under a tone, through a little pedalboard reverb."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    mono = 0.25 * np.sin(2 * np.pi * pitch_hz * t)
    beat = int(RATE * 60 / bpm)
    kick_t = np.arange(int(0.12 * RATE)) / RATE
    kick = 0.8 * np.sin(2 * np.pi * 60 * kick_t) * np.exp(-kick_t * 30)
    for start in range(0, n - kick.size, beat):
        mono[start : start + kick.size] += kick
    stereo = np.stack([mono, mono]).astype(np.float32)
    stereo = build_board([Reverb(room_size=0.2, wet_level=0.1)])(stereo, RATE)
    buffer = io.BytesIO()
    with AudioFile(buffer, "w", samplerate=RATE, num_channels=2, format="wav") as f:
        f.write(np.clip(stereo, -1, 1))
    return buffer.getvalue()


async def upload_track(
    http: httpx.AsyncClient, user: TestUser, payload: bytes, name: str = "loop.wav"
) -> dict[str, Any]:
    """Upload through POST /uploads and wait until the worker stored and analysed it."""
    response = await http.post(
        "/uploads",
        files={"file": (name, payload, "application/octet-stream")},
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]

    async def analysed() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await http.get(f"/uploads/{upload_id}", headers=user.headers)
        ).json()
        return body if body["analysis_status"] in ("completed", "failed") else None

    body = await eventually(analysed, within=60, what=f"the analysis of {name}")
    assert body["analysis_status"] == "completed", body
    return body


async def create_mashup(
    http: httpx.AsyncClient, user: TestUser, name: str = "Night drive", seconds: int = 60
) -> dict[str, Any]:
    response = await http.post(
        "/mashups",
        json={"name": name, "target_duration_seconds": seconds},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def join_by_code(http: httpx.AsyncClient, user: TestUser, code: str) -> dict[str, Any]:
    response = await http.post("/mashups/join", json={"code": code}, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def clip(
    clip_id: str, track_id: str, *, position: float = 0.0, out: float = 4.0, **extra: Any
) -> dict[str, Any]:
    return {
        "id": clip_id,
        "track_id": track_id,
        "in_seconds": 0.0,
        "out_seconds": out,
        "position_beats": position,
        **extra,
    }


class MashupClient:
    """A room member that keeps the state the way a real client does: the welcome's
    snapshot, then every batch (its own when acked) through the server's own reducer."""

    def __init__(self, client: Client) -> None:
        self.client = client
        welcome = client.welcome
        self.user_id = uuid.UUID(welcome["user_id"])
        self.role: str = welcome["role"]
        self.state = msgspec.convert(welcome["state"], MashupRoomState)
        self.seqs: list[tuple[int, str]] = []  # (seq, op_id) of every batch, in order
        self.announcements: list[dict[str, Any]] = []  # preview ops, in order
        # Batches carrying generation ops, as (seq, ops), in order.
        self.generation_batches: list[tuple[int, list[dict[str, Any]]]] = []
        self._mine: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    async def connect(cls, base_ws: str, mashup_id: str, token: str) -> MashupClient:
        return cls(await join(base_ws, uuid.UUID(mashup_id), token, kind="mashup"))

    def _apply(self, author: uuid.UUID, ops: Any, seq: int) -> None:
        decoded = _ops.decode(msgspec.json.encode(ops))
        role = "server" if author == SERVER_USER_ID else self.role
        self.state = KIND.apply_batch(self.state, decoded, Actor(user_id=author, role=role))
        self.announcements += [op for op in ops if op["op"].startswith("preview_")]
        if any(op["op"] in ("generation", "generated") for op in ops):
            self.generation_batches.append((seq, ops))

    async def recv(self, within: float = 20.0) -> dict[str, Any]:
        message = await self.client.recv(within)
        kind = message["type"]
        if kind == "batch":
            self.seqs.append((message["seq"], message["op_id"]))
            self._apply(uuid.UUID(message["author"]), message["ops"], message["seq"])
        elif kind == "ack" and message["op_id"] in self._mine:
            self.seqs.append((message["seq"], message["op_id"]))
            self._apply(self.user_id, self._mine.pop(message["op_id"]), message["seq"])
        elif kind == "error" and message.get("op_id") in self._mine:
            self._mine.pop(message["op_id"])
        elif kind == "ping":
            await self.client.send({"type": "pong"})
        return message

    async def until(self, predicate: Any, within: float = 30.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            message = await self.recv(max(0.01, deadline - loop.time()))
            if predicate(message):
                return message

    async def until_state(self, predicate: Any, within: float = 30.0) -> None:
        if predicate(self.state):
            return
        await self.until(lambda _: predicate(self.state), within)

    async def until_preview_done(self, preview_id: str, within: float = 60.0) -> dict[str, Any]:
        """Wait for the preview's ``preview_ready`` or ``preview_failed``; that op."""

        def done() -> dict[str, Any] | None:
            for a in self.announcements:
                if a["op"] == "preview_ready" and a["preview"]["id"] == preview_id:
                    return a
                if a["op"] == "preview_failed" and a["id"] == preview_id:
                    return a
            return None

        if done() is None:
            await self.until(lambda _: done() is not None, within)
        result = done()
        assert result is not None
        return result

    async def send_ops(self, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """Send a batch and wait for its answer: the ack or the error."""
        op_id = uuid.uuid4().hex
        self._mine[op_id] = ops
        await self.client.send({"type": "ops", "op_id": op_id, "ops": ops})
        return await self.until(lambda m: m["type"] in ("ack", "error") and m.get("op_id") == op_id)

    async def close(self) -> None:
        await self.client.close()
