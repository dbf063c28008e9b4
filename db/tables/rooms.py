"""The durable side of rooms: sequence counter, op log, snapshots, versions and checkpoints."""

from piccolo.columns import JSONB, UUID, BigInt, ForeignKey, OnDelete, Varchar
from piccolo.table import Table

from db.tables._columns import timestamp_now


class Room(Table, tablename="rooms"):
    id = UUID(primary_key=True)
    kind = Varchar(length=32)
    seq = BigInt(default=0)
    created_at = timestamp_now()


class RoomOp(Table, tablename="room_ops"):
    # The real primary key is (room_id, seq); Piccolo needs one column, and seq serves for reads.
    room_id = ForeignKey(Room, on_delete=OnDelete.cascade)
    seq = BigInt(primary_key=True)
    author_id = UUID(null=True, default=None)
    op_id = Varchar(length=64)
    body = JSONB()
    created_at = timestamp_now()


class RoomSnapshot(Table, tablename="room_snapshots"):
    room_id = UUID(primary_key=True)
    seq = BigInt()
    state = JSONB()
    created_at = timestamp_now()


class RoomVersion(Table, tablename="room_versions"):
    """A named version: the room's state at ``seq``, kept for as long as the room."""

    id = UUID(primary_key=True)
    room_id = ForeignKey(Room, on_delete=OnDelete.cascade)
    seq = BigInt()
    label = Varchar(length=100)
    author_id = UUID(null=True, default=None)
    op_id = Varchar(length=64, null=True, default=None)
    state = JSONB()
    created_at = timestamp_now()


class RoomCheckpoint(Table, tablename="room_checkpoints"):
    """A copy of every snapshot, so the state at a seq still in the log can be rebuilt."""

    # The real primary key is (room_id, seq), as for room_ops.
    room_id = ForeignKey(Room, on_delete=OnDelete.cascade)
    seq = BigInt(primary_key=True)
    state = JSONB()
    created_at = timestamp_now()
