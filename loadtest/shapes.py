"""Load shapes: named presets for ``blendtune loadtest --shape NAME``.

Rates are per member. Defaults are sized for a 2-core machine that also runs the servers,
Redis, PostgreSQL and the load generator (see docs/performance.md); raise them on bigger
machines with ``--rooms/--members/--presence-rate/--op-rate``.
"""

from __future__ import annotations

import msgspec


class Shape(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    rooms: int
    members: int
    presence_rate: float = 0.0
    op_rate: float = 0.0
    duration: float = 20.0
    churn_rate: float = 0.0  # reconnects per second, whole run
    processes: int = 2


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape(
            name="small-rooms",
            description="many rooms of 5 members: presence at 2 Hz each, an op batch every 5 s",
            rooms=200,
            members=5,
            presence_rate=2.0,
            op_rate=0.2,
        ),
        Shape(
            name="large-rooms",
            description="a few rooms of 50 members: presence at 1 Hz each, an op batch every 10 s",
            rooms=4,
            members=50,
            presence_rate=1.0,
            op_rate=0.1,
        ),
        Shape(
            name="huge-room",
            description="one room of 1000 members (needs BLENDTUNE_WS_ROOM_MAX_MEMBERS >= 1000): "
            "presence every 50 s each, i.e. 20 updates/s fanned out to everyone",
            rooms=1,
            members=1000,
            presence_rate=0.02,
        ),
        Shape(
            name="idle-churn",
            description="2000 idle connections in rooms of 4; 20 of them disconnect and "
            "reconnect every second",
            rooms=500,
            members=4,
            churn_rate=20.0,
        ),
        Shape(
            name="ops",
            description="durable op throughput: rooms of 5, each member sends an op batch every "
            "2.5 s (400 batches/s offered), no presence",
            rooms=200,
            members=5,
            op_rate=0.4,
        ),
        Shape(
            name="presence",
            description="presence only in rooms of 5 (the shape the baselines are compared on)",
            rooms=200,
            members=5,
            presence_rate=2.0,
        ),
    )
}
