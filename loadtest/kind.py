"""The ``loadtest`` room kind: cheap, deterministic ops for measuring the rooms core.

Enable it on the servers under test with ``BLENDTUNE_ROOM_KINDS=loadtest.kind:LoadTestKind``.
Its state is a counter and its only op, ``{"op": "tick"}``, increments it, so a load test
measures sequencing, durability and fan-out rather than a domain's rules. Only rooms made by
``blendtune loadtest-seed`` (a ``rooms`` row of kind ``loadtest``) exist, and only the
seeded load-test users (``@loadtest.invalid``) are members, so enabling it does not open
rooms to anyone else. Still, enable it on load-test deployments only.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import msgspec

from rooms.kinds import Actor, Membership, RoomKind

if TYPE_CHECKING:
    from rooms.context import KindContext

EMAIL_DOMAIN = "loadtest.invalid"


class Counter(msgspec.Struct, frozen=True):
    batches: int = 0


class Tick(msgspec.Struct, frozen=True, tag_field="op", tag="tick"):
    pass


class LoadTestKind(RoomKind[Counter, Tick]):
    name = "loadtest"
    state_type = Counter
    op_type = Tick
    max_batch_ops = 10

    def initial_state(self) -> Counter:
        return Counter()

    def apply(self, state: Counter, op: Tick, actor: Actor) -> Counter:
        return Counter(batches=state.batches + 1)

    async def exists(self, services: KindContext, room_id: uuid.UUID) -> bool:
        found = await services.pool.fetchval(
            "SELECT 1 FROM rooms WHERE id = $1 AND kind = 'loadtest'", room_id
        )
        return found is not None

    async def membership(
        self, services: KindContext, room_id: uuid.UUID, user_id: uuid.UUID
    ) -> Membership | None:
        found = await services.pool.fetchval(
            "SELECT 1 FROM users WHERE id = $1 AND email LIKE '%@' || $2", user_id, EMAIL_DOMAIN
        )
        return Membership(role="editor") if found is not None else None
