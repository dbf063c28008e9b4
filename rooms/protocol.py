"""The room wire protocol: every message a msgspec Struct, tagged on the field ``type``.

docs/protocol.md is the contract written out for client authors; keep both in step.
JSON text frames, one message per frame. The client names its version in ``hello`` and the
``welcome`` repeats it; the server speaks every version in ``PROTOCOL_VERSIONS``.
"""

from __future__ import annotations

import datetime
import uuid
from enum import IntEnum

import msgspec

# Version 2 replaces the per-member ``joined``/``left`` messages with ``members`` (the roster
# changes of a tick in one message); everything else is the same. Version 1 clients keep
# getting ``joined``/``left`` one by one.
PROTOCOL_VERSION = 2
PROTOCOL_VERSIONS = frozenset({1, 2})
OP_ID_MAX = 64


class Close(IntEnum):
    """WebSocket close codes the server uses (see docs/protocol.md)."""

    NORMAL = 1000
    # Sent by the ASGI server itself when a frame exceeds ws_max_frame_bytes.
    TOO_BIG = 1009
    INTERNAL = 1011
    # The process is shutting down: reconnect (the load balancer picks another process).
    RESTARTING = 1012
    # PostgreSQL or Redis is unreachable right now: reconnect later, with backoff.
    TRY_AGAIN_LATER = 1013
    BAD_REQUEST = 4400
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    TIMEOUT = 4408
    RESYNC = 4409
    ROOM_FULL = 4460  # the room already has ws_room_max_members connections
    FLOOD = 4429


# ------------------------------------------------------------------ client -> server


class Hello(msgspec.Struct, tag_field="type", tag="hello", forbid_unknown_fields=True):
    v: int
    token: str | None = None
    last_seq: int | None = None


class Ops(msgspec.Struct, tag_field="type", tag="ops", forbid_unknown_fields=True):
    op_id: str
    ops: msgspec.Raw


class PresenceIn(msgspec.Struct, tag_field="type", tag="presence", forbid_unknown_fields=True):
    state: msgspec.Raw


class Ping(msgspec.Struct, tag_field="type", tag="ping", forbid_unknown_fields=True):
    pass


class Pong(msgspec.Struct, tag_field="type", tag="pong", forbid_unknown_fields=True):
    pass


class Undo(msgspec.Struct, tag_field="type", tag="undo", forbid_unknown_fields=True):
    op_id: str


class Redo(msgspec.Struct, tag_field="type", tag="redo", forbid_unknown_fields=True):
    op_id: str


class Restore(msgspec.Struct, tag_field="type", tag="restore", forbid_unknown_fields=True):
    """Exactly one of ``version`` (a named version's id) and ``seq``."""

    op_id: str
    version: uuid.UUID | None = None
    seq: int | None = None


class NameVersion(msgspec.Struct, tag_field="type", tag="version", forbid_unknown_fields=True):
    op_id: str
    label: str
    seq: int | None = None


HistoryMessage = Undo | Redo | Restore | NameVersion
ClientMessage = Hello | Ops | PresenceIn | Ping | Pong | Undo | Redo | Restore | NameVersion
CLIENT_TYPES = frozenset(
    {"hello", "ops", "presence", "ping", "pong", "undo", "redo", "restore", "version"}
)


class Envelope(msgspec.Struct):
    """Just the tag, to tell an unknown ``type`` from a malformed message."""

    type: str


# ------------------------------------------------------------------ server -> client


class Member(msgspec.Struct, omit_defaults=False):
    """One connection in the room. A user with two tabs is two members."""

    id: str
    user_id: uuid.UUID
    role: str
    state: msgspec.Raw | None = None


class Limits(msgspec.Struct):
    max_frame_bytes: int
    ops_per_second: int
    max_batch_ops: int
    presence_max_bytes: int
    max_pending_batches: int
    # How far back a resume reaches: at most this many batches behind the room...
    resume_max_batches: int
    # ...and only while they are in the log, which keeps at least this many batches behind
    # the latest snapshot and every batch for at least this many hours.
    log_min_batches: int
    log_min_hours: float


class Welcome(msgspec.Struct, tag_field="type", tag="welcome"):
    v: int
    room_id: uuid.UUID
    kind: str
    member_id: str
    user_id: uuid.UUID
    role: str
    seq: int
    # True: the batches after last_seq follow (possibly none) and state is null.
    # False: state is the room's state at seq; drop whatever you had.
    resumed: bool
    state: msgspec.Raw | None
    # A JSON list of ``Member``: encoded once per roster change, not once per welcome.
    members: msgspec.Raw
    heartbeat_seconds: float
    limits: Limits


class Batch(msgspec.Struct, tag_field="type", tag="batch"):
    seq: int
    author: uuid.UUID
    op_id: str
    ops: msgspec.Raw


class Ack(msgspec.Struct, tag_field="type", tag="ack"):
    op_id: str
    seq: int
    duplicate: bool = False


class HistoryDone(msgspec.Struct):
    """What an undo, redo or restore did (in its ``ack``)."""

    action: str
    target: int
    applied: int
    skipped: int


class HistoryAck(msgspec.Struct, tag_field="type", tag="ack"):
    """The ``ack`` of an undo, redo or restore: an ``Ack`` with the ops the server computed
    (the author has not seen them) and what they did."""

    op_id: str
    seq: int
    duplicate: bool
    ops: msgspec.Raw
    history: HistoryDone


class VersionInfo(msgspec.Struct):
    id: uuid.UUID
    label: str
    seq: int
    author: uuid.UUID | None
    created_at: datetime.datetime


class VersionNamed(msgspec.Struct, tag_field="type", tag="version"):
    """A member named a version (to every member; ``duplicate`` only to a re-sender)."""

    op_id: str
    duplicate: bool
    version: VersionInfo


class Error(msgspec.Struct, tag_field="type", tag="error"):
    code: str
    detail: str
    # Set when the error answers an ``ops`` message: that batch changed nothing.
    op_id: str | None = None


class Joined(msgspec.Struct, tag_field="type", tag="joined"):
    member: Member


class Left(msgspec.Struct, tag_field="type", tag="left"):
    id: str


class Members(msgspec.Struct, tag_field="type", tag="members"):
    """Version 2: the roster changes of one tick. ``joined`` (members as ``Member`` JSON,
    with their latest presence) and ``left`` (ids) are disjoint: each id's final state."""

    joined: list[msgspec.Raw]
    left: list[str]


class PresenceOut(msgspec.Struct, tag_field="type", tag="presence"):
    id: str
    state: msgspec.Raw


class Notice(msgspec.Struct, tag_field="type", tag="notice"):
    code: str
    detail: str


class ServerPing(msgspec.Struct, tag_field="type", tag="ping"):
    pass


class ServerPong(msgspec.Struct, tag_field="type", tag="pong"):
    pass


# Error codes (``error.code``).
BAD_MESSAGE = "bad_message"  # not JSON, wrong fields or field types
UNKNOWN_TYPE = "unknown_type"
BAD_OPS = "bad_ops"  # the ops do not match the room kind's op schema
TOO_MANY_OPS = "too_many_ops"
RATE_LIMITED = "rate_limited"
PRESENCE_TOO_LARGE = "presence_too_large"
UNAVAILABLE = "unavailable"  # the database did not answer; resend the same op_id later
# More than limits.max_pending_batches of the connection's batches unanswered; resend later.
TOO_MANY_PENDING = "too_many_pending"
# The room has ROOM_QUEUE_MAX batches waiting for the database; resend later.
BUSY = "busy"
INTERNAL = "internal"
# Kind rejections (``OpRejected.code``): not_found, forbidden, conflict, invalid, ...

_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> str:
    """One message as the text of a frame."""
    return _encoder.encode(message).decode()


PING_TEXT = encode(ServerPing())
PONG_TEXT = encode(ServerPong())
