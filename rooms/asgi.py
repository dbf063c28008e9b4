"""The WebSocket endpoint ``/rooms/{kind}/{room_id}``: a plain ASGI handler.

It is mounted into Litestar (``asgi`` route, ``is_mount=True``) rather than written with
Litestar's WebSocket layer, which closes with 4500 on any exception and adds per-message
overhead; here every close code is the one docs/protocol.md promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Litestar
from litestar import types as lt
from litestar.handlers import asgi

from rooms import protocol as p
from rooms import store
from rooms.conn import Conn
from rooms.context import RoomsContext
from rooms.direct import DirectWriter
from rooms.history_live import HistoryLive
from rooms.hub import Hub, JoinRefused
from rooms.kinds import Actor, RoomKind
from rooms.registry import load_kinds
from rooms.room import ROOM_QUEUE_MAX

logger = logging.getLogger("blendtune.rooms")

# The ASGI server's own types are loose dicts; so are ours.
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_client_decoder = msgspec.json.Decoder(p.ClientMessage)
_envelope_decoder = msgspec.json.Decoder(p.Envelope)
_hello_decoder = msgspec.json.Decoder(p.Hello)


def _origin_allowed(scope: Scope, public_url: str) -> bool:
    """Browsers send ``Origin``; only this server's own pages may open a room with the
    visitor's cookie (SameSite=Lax still lets a sibling subdomain try). Clients that are not
    browsers send no Origin and authenticate explicitly."""
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True
    # Hosts, not schemes: behind a TLS-terminating proxy the socket's scheme is not the page's.
    allowed = {headers.get(b"host", b"").decode("latin-1").lower(), _host(public_url)}
    return _host(origin.decode("latin-1")) in allowed


def _host(url: str) -> str:
    return urlsplit(url.strip()).netloc.lower()


def _target(path: str) -> tuple[str, uuid.UUID | None]:
    parts = [part for part in path.split("/") if part]
    if parts and parts[0] == "rooms":
        parts = parts[1:]
    if len(parts) != 2:
        return "", None
    try:
        return parts[0], uuid.UUID(parts[1])
    except ValueError:
        return parts[0], None


def _abort_for(receive: Receive) -> Any:
    # uvicorn's receive is a bound method of its protocol object; aborting its transport is
    # the only way to drop a client that will not even read our close frame. Best effort.
    # (A bound method, not a closure: it is kept per connection.)
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    return abort if callable(abort) else _no_abort


def _no_abort() -> None:
    pass


class Session:
    """What the message handlers of one connection share."""

    __slots__ = ("conn", "kind", "ops_decoder")

    def __init__(self, conn: Conn, kind: RoomKind[Any, Any]) -> None:
        self.conn = conn
        self.kind = kind
        self.ops_decoder = store.ops_decoder(kind)


Handler = Callable[[Session, Any, float], None]


class RoomsEndpoint:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.handlers: dict[type, Handler] = {
            p.Ops: self._on_ops,
            p.PresenceIn: self._on_presence,
            p.Ping: self._on_ping,
            p.Pong: self._on_pong,
            p.Hello: self._on_hello,
            p.Undo: self._on_history,
            p.Redo: self._on_history,
            p.Restore: self._on_history,
            p.NameVersion: self._on_history,
        }
        self.history = HistoryLive(hub)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await send(
                {
                    "type": "http.response.start",
                    "status": 426,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"WebSocket only\n"})
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if not _origin_allowed(scope, self.hub.settings.public_url):
            # Closing before accepting refuses the handshake with HTTP 403.
            await send({"type": "websocket.close", "code": p.Close.FORBIDDEN})
            return
        await send({"type": "websocket.accept"})
        del message
        # One coroutine frame stays for the connection's life, holding only what it needs:
        # the handshake's locals go with _admit's frame, and each message with _dispatch's
        # (an idle connection's memory: docs/performance.md).
        try:
            admitted = await self._admit(scope, receive, send)
            if admitted is None:
                return
            conn, kind = admitted
            del admitted
            session = Session(conn, kind)
            conn.start()
            try:
                while self._dispatch(session, await receive()):
                    pass
            finally:
                self.hub.leave(conn)
                conn.stop()
        except Exception:
            logger.exception("room connection failed")
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": p.Close.INTERNAL})

    async def _admit(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[Conn, RoomKind[Any, Any]] | None:
        """The hello, authentication, access checks and the join; None if refused (closed)."""
        hub = self.hub

        async def close(code: int, reason: str) -> None:
            hub.metrics.closes.labels(str(code)).inc()
            await send({"type": "websocket.close", "code": code, "reason": reason})

        if hub.closing:
            await close(p.Close.RESTARTING, "server restarting: reconnect")
            return None
        try:
            message = await asyncio.wait_for(receive(), hub.settings.ws_auth_timeout_seconds)
        except TimeoutError:
            await close(p.Close.TIMEOUT, "no hello in time")
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        try:
            if text is None:
                raise msgspec.DecodeError("binary frame")
            hello = _hello_decoder.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            await close(p.Close.BAD_REQUEST, "the first message must be a hello")
            return None
        if hello.v not in p.PROTOCOL_VERSIONS:
            await close(
                p.Close.BAD_REQUEST, f"unsupported protocol version, use {p.PROTOCOL_VERSION}"
            )
            return None
        ctx = hub.ctx
        try:
            user_id = await ctx.authenticate(hello.token, scope.get("headers", []))
        except Exception:
            await close(p.Close.TRY_AGAIN_LATER, "service unavailable: retry later")
            return None
        if user_id is None:
            await close(p.Close.UNAUTHENTICATED, "unauthenticated")
            return None
        kind_name, room_id = _target(scope.get("path", ""))
        kind = hub.kinds.get(kind_name)
        if kind is None or room_id is None:
            await close(p.Close.NOT_FOUND, "no such room")
            return None
        try:
            if not await kind.exists(ctx.kinds, room_id):
                await close(p.Close.NOT_FOUND, "no such room")
                return None
            membership = await kind.membership(ctx.kinds, room_id, user_id)
            if membership is None:
                await close(p.Close.FORBIDDEN, "not a member of this room")
                return None
            live = hub.rooms.get(room_id)
            # A room live here has its row (a deleted one is found gone by the join's read).
            known = live is not None and live.kind is kind and live.loaded and not live.gone
            if not known and not await store.ensure_room(ctx.pool, kind.name, room_id):
                await close(p.Close.NOT_FOUND, "no such room")
                return None
        except Exception:
            logger.exception("room access check failed")
            await close(p.Close.TRY_AGAIN_LATER, "service unavailable: retry later")
            return None
        actor = Actor(user_id=user_id, role=membership.role)
        member = p.Member(id=hub.new_member_id(), user_id=user_id, role=membership.role)
        conn = Conn(hub, send, _abort_for(receive), member, actor, hello.v)
        conn.direct = DirectWriter.for_receive(receive)
        try:
            await hub.join(kind, room_id, conn, hello.last_seq)
        except JoinRefused as exc:
            await close(exc.code, exc.reason)
            return None
        except store.RoomGone:
            await close(p.Close.NOT_FOUND, "no such room")
            return None
        except Exception as exc:
            logger.warning("join failed: %r", exc)
            await close(p.Close.TRY_AGAIN_LATER, "service unavailable: retry later")
            return None
        hub.metrics.count_in("hello")
        return conn, kind

    def _dispatch(self, session: Session, message: dict[str, Any]) -> bool:
        """Handle one ASGI message from the client; False once it disconnected."""
        if message["type"] == "websocket.disconnect":
            return False
        conn = session.conn
        if conn.close_code is not None:
            return True  # closing: nothing more is read
        now = time.monotonic()
        conn.last_seen = now
        conn.pinged = False
        text = message.get("text")
        if text is None:
            self._error(conn, p.BAD_MESSAGE, "binary frames are not supported")
            return True
        try:
            msg = _client_decoder.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._refuse(conn, text, exc)
            return True
        self.handlers[type(msg)](session, msg, now)
        return True

    # One handler per client message type (``handlers``): a new message is a Struct in
    # ``protocol.ClientMessage``, a line in docs/protocol.md and a handler registered here.

    def _on_ops(self, session: Session, msg: Any, now: float) -> None:
        conn, kind = session.conn, session.kind
        self.hub.metrics.count_in("ops")
        allowed = conn.ops_bucket.take(now)
        if not allowed:
            self._limited(conn, allowed, msg.op_id)
            return
        if not store.validate_op_id(msg.op_id):
            self._error(conn, p.BAD_MESSAGE, "op_id must be 1 to 64 characters", msg.op_id)
            return
        try:
            ops = session.ops_decoder.decode(msg.ops)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._error(conn, p.BAD_OPS, str(exc), msg.op_id)
            return
        max_ops = kind.max_batch_ops
        if not ops or len(ops) > max_ops:
            self._error(conn, p.TOO_MANY_OPS, f"1 to {max_ops} ops per batch", msg.op_id)
            return
        history_only = kind.history_only
        if history_only and any(isinstance(op, history_only) for op in ops):
            self._error(conn, p.BAD_OPS, "only history batches carry that op", msg.op_id)
            return
        if conn.unanswered >= self.hub.settings.ws_max_pending_batches:
            detail = "too many batches waiting for their answer: resend later"
            self._error(conn, p.TOO_MANY_PENDING, detail, msg.op_id)
            return
        room = conn.room
        assert room is not None
        if len(room.queue) >= ROOM_QUEUE_MAX:
            detail = "the room has too many batches waiting for the database: resend later"
            self._error(conn, p.BUSY, detail, msg.op_id)
            return
        room.submit(store.Pending(conn.actor, msg.op_id, ops, store.encode_ops(ops), owner=conn))

    def _on_presence(self, session: Session, msg: Any, now: float) -> None:
        conn = session.conn
        self.hub.metrics.count_in("presence")
        allowed = conn.other_bucket.take(now)
        if not allowed:
            self._limited(conn, allowed, None)
            return
        raw = msg.state
        presence_max = self.hub.settings.ws_presence_max_bytes
        if len(raw) > presence_max:
            self._error(conn, p.PRESENCE_TOO_LARGE, f"presence state exceeds {presence_max} bytes")
            return
        if bytes(memoryview(raw)[:1]) not in (b"{", b"n"):
            self._error(conn, p.BAD_MESSAGE, "presence state must be an object or null")
            return
        self.hub.presence(conn, raw)

    def _on_ping(self, session: Session, msg: Any, now: float) -> None:
        self.hub.metrics.count_in("ping")
        allowed = session.conn.other_bucket.take(now)
        if not allowed:
            self._limited(session.conn, allowed, None)
            return
        session.conn.enqueue(p.PONG_TEXT)

    def _on_pong(self, session: Session, msg: Any, now: float) -> None:
        self.hub.metrics.count_in("pong")

    def _on_history(self, session: Session, msg: Any, now: float) -> None:
        # undo, redo, restore, version: rooms.history_live (they share the ops budget).
        conn = session.conn
        self.hub.metrics.count_in(msg.__struct_config__.tag)
        allowed = conn.ops_bucket.take(now)
        if not allowed:
            self._limited(conn, allowed, msg.op_id)
            return
        self.history.receive(conn, msg)

    def _on_hello(self, session: Session, msg: Any, now: float) -> None:
        self.hub.metrics.count_in("hello")
        self._error(session.conn, p.BAD_MESSAGE, "already joined: hello is only the first message")

    def _error(self, conn: Conn, code: str, detail: str, op_id: str | None = None) -> None:
        self.hub.metrics.rejected.labels(code).inc()
        conn.enqueue(p.encode(p.Error(code=code, detail=detail, op_id=op_id)))

    def _limited(self, conn: Conn, allowed: bool | None, op_id: str | None) -> None:
        if allowed is None:
            self.hub.metrics.rejected.labels("flood").inc()
            conn.close(p.Close.FLOOD, "too many messages")
        else:
            self._error(conn, p.RATE_LIMITED, "slow down: over the message rate", op_id)

    def _refuse(self, conn: Conn, text: str, exc: Exception) -> None:
        try:
            envelope = _envelope_decoder.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._error(conn, p.BAD_MESSAGE, f"not a message: {exc}")
            return
        self.hub.metrics.count_in("unknown")
        if envelope.type not in p.CLIENT_TYPES:
            self._error(conn, p.UNKNOWN_TYPE, f"unknown message type {envelope.type[:40]!r}")
        else:
            self._error(conn, p.BAD_MESSAGE, str(exc))


def create(ctx: RoomsContext) -> tuple[Any, Any]:
    """The mountable route handler and the lifespan that runs the hub."""
    holder: dict[str, RoomsEndpoint] = {}

    @asgi("/rooms", is_mount=True, copy_scope=False)
    async def rooms_endpoint(scope: lt.Scope, receive: lt.Receive, send: lt.Send) -> None:
        endpoint = holder.get("endpoint")
        if endpoint is None:
            await send({"type": "websocket.close", "code": p.Close.TRY_AGAIN_LATER, "reason": ""})
            return
        await endpoint(scope, receive, send)  # type: ignore[arg-type]

    @asynccontextmanager
    async def rooms_lifespan(app: Litestar) -> AsyncIterator[None]:
        hub = Hub(ctx, load_kinds(ctx.settings))
        await hub.start()
        # What start-up created (imports, the app, the kinds: ~150k objects) lives as long as
        # the process; frozen, it is no longer walked by every full collection, which a burst
        # of joins triggers (a 100-300 ms pause then, 30-40 ms after; docs/performance.md).
        gc.collect()
        gc.freeze()
        holder["endpoint"] = RoomsEndpoint(hub)
        app.state.rooms_hub = hub
        app.state.rooms_endpoint = holder["endpoint"]  # (server.app.create_server uses it)
        try:
            yield
        finally:
            await hub.stop()

    return rooms_endpoint, rooms_lifespan
