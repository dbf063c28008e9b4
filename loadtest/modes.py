"""What the load tester says on the wire, per mode.

A mode turns the generator's intents (join this room, publish presence number n scheduled at
t, send op batch n scheduled at t) into frames, and classifies what comes back into a few
events the generator counts. The hot path is ``parse``: one msgspec decode per frame.

``simple`` is the tiny protocol the baseline servers in ``bench/`` speak (see
docs/performance.md, "The simple wire format"):

- connect to ``ws://HOST:PORT/simple``;
- send ``{"type":"join","room":"<name>"}``; the server answers ``{"type":"joined"}`` once
  it is subscribed, so a member counts as connected only when it can receive;
- send ``{"type":"presence","m":<member>,"n":<counter>,"t":<unix time>,"pad":"..."}``;
  the server forwards the frame, byte for byte, to every other member of the room on every
  process. The server never parses it. Frames are padded to ``payload_bytes`` (178 by
  default, the size the design's reference measurements used).

``blendtune`` speaks the room protocol of docs/protocol.md (see ``loadtest.blendtune``).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

# Events a mode reports to the generator (plain tuples: they are made per frame).
# (READY, seq, resumed): joined; seq = the room's current sequence number (0 in simple);
# resumed: the batches after the last_seq we sent follow (so ordering continues from ours)
READY = 0
PRESENCE = 1  # (PRESENCE, sender, n, t)
OP = 2  # (OP, seq, sender, t, n): an accepted batch (sender's batch n) as fanned out
ACK = 3  # (ACK, n, seq, duplicate): our batch n was accepted with this seq
REJECT = 4  # (REJECT, n, code)
ERROR = 5  # (ERROR, code)
OTHER = 6  # (OTHER,): anything else (member joined/left, heartbeats, ...)
RESYNC = 7  # (RESYNC, seq): the server sent a fresh snapshot; ordering restarts at seq
REPLY = 8  # (REPLY, frame): the server expects this frame back now (an application ping)

Event = tuple[object, ...]


class Member(msgspec.Struct, frozen=True):
    """One simulated client: which room, its index in the room, where and who."""

    room: str  # the room's name (simple) or id (blendtune)
    room_index: int
    index: int  # position in the room, 0..room_size-1; goes into every frame it sends
    room_size: int
    url: str  # base URL of the server, http(s)://host:port
    token: str = ""  # session token (blendtune mode)


class Mode(Protocol):
    name: str

    def url(self, member: Member) -> str: ...

    def hello(self, member: Member, last_seq: int | None = None) -> list[bytes]: ...

    def headers(self, member: Member) -> dict[str, str]: ...

    def presence(self, member: Member, n: int, t: float) -> bytes: ...

    def op(self, member: Member, n: int, t: float) -> bytes: ...

    def parse(self, data: bytes) -> Event: ...


def ws_base(url: str) -> str:
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


class SimplePresence(msgspec.Struct, tag_field="type", tag="presence"):
    m: int
    n: int
    t: float


class SimpleJoined(msgspec.Struct, tag_field="type", tag="joined"):
    pass


class SimpleJoin(msgspec.Struct, tag_field="type", tag="join"):
    room: str


class SimplePresenceOut(msgspec.Struct, tag_field="type", tag="presence"):
    m: int
    n: int
    t: float
    pad: str


class SimpleMode:
    """The baselines' protocol: join, then broadcast presence."""

    name = "simple"

    def __init__(self, payload_bytes: int = 178) -> None:
        self.payload_bytes = payload_bytes
        self._decoder = msgspec.json.Decoder(SimplePresence | SimpleJoined)
        self._encoder = msgspec.json.Encoder()

    def url(self, member: Member) -> str:
        return ws_base(member.url).rstrip("/") + "/simple"

    def headers(self, member: Member) -> dict[str, str]:
        return {}

    def hello(self, member: Member, last_seq: int | None = None) -> list[bytes]:
        return [self._encoder.encode(SimpleJoin(room=member.room))]

    def presence(self, member: Member, n: int, t: float) -> bytes:
        frame = self._encoder.encode(SimplePresenceOut(m=member.index, n=n, t=t, pad=""))
        missing = self.payload_bytes - len(frame)
        if missing > 0:
            frame = self._encoder.encode(
                SimplePresenceOut(m=member.index, n=n, t=t, pad="x" * missing)
            )
        return frame

    def op(self, member: Member, n: int, t: float) -> bytes:
        raise ValueError("the simple mode has no ops (use --op-rate 0)")

    def parse(self, data: bytes) -> Event:
        try:
            msg = self._decoder.decode(data)
        except msgspec.DecodeError:
            return (OTHER,)
        if type(msg) is SimplePresence:
            return (PRESENCE, msg.m, msg.n, msg.t)
        return (READY, 0, False)
