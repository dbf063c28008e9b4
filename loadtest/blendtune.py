"""The ``blendtune`` mode: the room protocol of docs/protocol.md.

- connect to ``ws://HOST:PORT/rooms/<kind>/<room id>``, send ``hello`` with the token;
- ``welcome`` carries the room's ``seq``: op ordering is checked from there;
- presence: ``{"type":"presence","state":{"m":<member>,"n":<counter>,"t":<time>,...}}``;
  others receive ``{"type":"presence","id":...,"state":{...}}`` (the server coalesces
  presence per sender, so counter jumps are counted as ``skipped``, not as errors);
- ops: ``{"type":"ops","op_id":"<member>.<n>.<time>","ops":[{"op":"tick"}]}``; the author
  gets an ``ack`` with the op id and seq, everyone else a ``batch`` with the same op id,
  from which the receiver reads who sent it and when;
- a server ``ping`` is answered with ``pong`` (the server closes silent connections);
- a member that reconnects (churn, or after the server closed it) sends the last seq it saw
  and, when the server resumes it, must get exactly the batches it missed: gaps and
  duplicates are counted across the reconnect.
"""

from __future__ import annotations

import msgspec

from loadtest import modes
from loadtest.modes import Member


class _State(msgspec.Struct):
    m: int
    n: int
    t: float


class _Welcome(msgspec.Struct, tag_field="type", tag="welcome"):
    seq: int
    resumed: bool = False


class _Presence(msgspec.Struct, tag_field="type", tag="presence"):
    state: _State


class _Batch(msgspec.Struct, tag_field="type", tag="batch"):
    seq: int
    op_id: str


class _Ack(msgspec.Struct, tag_field="type", tag="ack"):
    op_id: str
    seq: int
    duplicate: bool = False


class _Error(msgspec.Struct, tag_field="type", tag="error"):
    code: str
    op_id: str | None = None


class _Ping(msgspec.Struct, tag_field="type", tag="ping"):
    pass


_Incoming = _Welcome | _Presence | _Batch | _Ack | _Error | _Ping

PONG = b'{"type":"pong"}'
TICK = msgspec.Raw(b'[{"op":"tick"}]')


class _Hello(msgspec.Struct, tag_field="type", tag="hello", omit_defaults=True):
    v: int
    token: str
    last_seq: int | None = None


class _PresenceOut(msgspec.Struct, tag_field="type", tag="presence"):
    state: dict[str, object]


class _Ops(msgspec.Struct, tag_field="type", tag="ops"):
    op_id: str
    ops: msgspec.Raw


def parse_op_id(op_id: str) -> tuple[int, int, float] | None:
    """``member.n.time`` -> (member, n, time); None for op ids not made by the load tester."""
    parts = op_id.split(".", 2)
    if len(parts) != 3:
        return None
    try:
        return int(parts[0]), int(parts[1]), float(parts[2])
    except ValueError:
        return None


class BlendtuneMode:
    name = "blendtune"

    def __init__(self, kind: str = "loadtest", payload_bytes: int = 178) -> None:
        self.kind = kind
        self.payload_bytes = payload_bytes
        self._decoder = msgspec.json.Decoder(_Incoming)
        self._encoder = msgspec.json.Encoder()

    def url(self, member: Member) -> str:
        return f"{modes.ws_base(member.url).rstrip('/')}/rooms/{self.kind}/{member.room}"

    def headers(self, member: Member) -> dict[str, str]:
        return {}

    def hello(self, member: Member, last_seq: int | None = None) -> list[bytes]:
        return [self._encoder.encode(_Hello(v=2, token=member.token, last_seq=last_seq))]

    def presence(self, member: Member, n: int, t: float) -> bytes:
        state: dict[str, object] = {"m": member.index, "n": n, "t": t}
        frame = self._encoder.encode(_PresenceOut(state=state))
        missing = self.payload_bytes - len(frame) - len(',"pad":""')
        if missing > 0:
            state["pad"] = "x" * missing
            frame = self._encoder.encode(_PresenceOut(state=state))
        return frame

    def op(self, member: Member, n: int, t: float) -> bytes:
        return self._encoder.encode(_Ops(op_id=f"{member.index}.{n}.{t:.6f}", ops=TICK))

    def parse(self, data: bytes) -> modes.Event:
        try:
            msg = self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return (modes.OTHER,)
        if isinstance(msg, _Presence):
            state = msg.state
            return (modes.PRESENCE, state.m, state.n, state.t)
        if isinstance(msg, _Batch):
            parsed = parse_op_id(msg.op_id)
            if parsed is None:
                return (modes.OP, msg.seq, -1, None, None)
            return (modes.OP, msg.seq, parsed[0], parsed[2], parsed[1])
        if isinstance(msg, _Ack):
            parsed = parse_op_id(msg.op_id)
            return (modes.ACK, parsed[1] if parsed else -1, msg.seq, msg.duplicate)
        if isinstance(msg, _Welcome):
            return (modes.READY, msg.seq, msg.resumed)
        if isinstance(msg, _Ping):
            return (modes.REPLY, PONG)
        if msg.op_id is not None:
            parsed = parse_op_id(msg.op_id)
            return (modes.REJECT, parsed[1] if parsed else -1, msg.code)
        return (modes.ERROR, msg.code)
