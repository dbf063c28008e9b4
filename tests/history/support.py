"""A mashup room member that also speaks the history messages (docs/protocol.md)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests.mashups.support import MashupClient, create_mashup, join_by_code
from tests.rooms.client import join
from tests.support import ServerProcess, TestUser, make_user, new_address


class Member(MashupClient):
    """Keeps the room's state as a client does, applying the ops of its history acks too."""

    @classmethod
    async def connect(
        cls, base_ws: str, mashup_id: str, token: str, last_seq: int | None = None
    ) -> Member:
        return cls(
            await join(base_ws, uuid.UUID(mashup_id), token, kind="mashup", last_seq=last_seq)
        )

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a history message with a fresh op id (unless it has one); its answer."""
        message = {"op_id": uuid.uuid4().hex, **message}
        await self.client.send(message)
        return await self.answer(message["op_id"])

    async def answer(self, op_id: str) -> dict[str, Any]:
        answer = await self.until(
            lambda m: m["type"] in ("ack", "error", "version") and m.get("op_id") == op_id
        )
        if answer["type"] == "ack" and "ops" in answer:
            self.seqs.append((answer["seq"], op_id))
            self._apply(self.user_id, answer["ops"], answer["seq"])
        return answer

    async def undo(self) -> dict[str, Any]:
        return await self.request({"type": "undo"})

    async def redo(self) -> dict[str, Any]:
        return await self.request({"type": "redo"})

    async def caught_up(self, seq: int) -> None:
        """Read until this member has applied ``seq``."""
        if not self.seqs or self.seqs[-1][0] < seq:
            await self.until(lambda _: bool(self.seqs) and self.seqs[-1][0] >= seq)


async def mashup_with(http: httpx.AsyncClient, owner: TestUser, *others: TestUser) -> str:
    """A mashup owned by ``owner`` that ``others`` joined by its share code (as editors)."""
    created = await create_mashup(http, owner, "History", 30)
    for user in others:
        await join_by_code(http, user, created["share_code"]["code"])
    mashup_id: str = created["id"]
    return mashup_id


def client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=30, headers={"X-Forwarded-For": new_address()})


async def two_members(
    a: ServerProcess, b: ServerProcess, db: asyncpg.Connection
) -> tuple[TestUser, TestUser, str, Member, Member]:
    """Alice (owner) and Bob (editor) in a new mashup, connected to ``a`` and ``b``."""
    alice, bob = await make_user(db), await make_user(db)
    async with client(a.url) as http:
        mashup_id = await mashup_with(http, alice, bob)
    ann = await Member.connect(a.ws_url, mashup_id, alice.token)
    ben = await Member.connect(b.ws_url, mashup_id, bob.token)
    await ann.until_state(lambda s: len(s.members) == 2)
    return alice, bob, mashup_id, ann, ben
