"""The Litestar app factory. Importing this module does no work; ``create_app`` does."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import Any, cast

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from rooms import asgi as rooms_asgi
from rooms.context import RoomsContext, RoomSettings
from server import accounts, auth, health, logs, web
from server.auth import current_principal
from server.blends import generation as blend_generation
from server.blends.controller import BlendController, TasteController
from server.blends.service import ShareCodeController as BlendShareCodes
from server.bodies import decode_strictly
from server.catalog.controller import TrackController
from server.history import BlendHistoryController, MashupHistoryController
from server.litestar_fixes import options_allow_every_method
from server.mashups import generation as mashup_generation
from server.mashups import previews as mashup_previews
from server.mashups.controller import MashupController
from server.mashups.service import ShareCodeController as MashupShareCodes
from server.metrics import metrics_endpoint, metrics_middleware
from server.openapi import StrictStructSchemaPlugin, document
from server.playlists.controller import PlaylistController
from server.problems import EXCEPTION_HANDLERS
from server.releases.controller import ReleaseController
from server.services import Services, build_services, get_services, services_lifespan
from server.settings import Settings, load_settings
from server.uploads.controller import UploadController
from server.uploads.worker import lifespan as uploads_lifespan


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    logs.configure(settings.log_level, settings.log_format)
    services = build_services(settings)
    rooms_endpoint, rooms_lifespan = rooms_asgi.create(rooms_context(services))
    app = Litestar(
        route_handlers=[
            health.healthz,
            health.readyz,
            metrics_endpoint,
            auth.whoami,
            TrackController,
            UploadController,
            ReleaseController,
            PlaylistController,
            BlendController,
            BlendShareCodes,
            TasteController,
            MashupController,
            MashupShareCodes,
            MashupHistoryController,
            BlendHistoryController,
            *accounts.route_handlers,
            rooms_endpoint,
            web.create_router(),
        ],
        dependencies={
            "services": Provide(get_services, sync_to_thread=False),
            "principal": Provide(current_principal),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=decode_strictly,
        middleware=[metrics_middleware],
        lifespan=[
            services_lifespan,
            uploads_lifespan,
            blend_generation.lifespan,
            mashup_previews.lifespan,
            mashup_generation.lifespan,
            accounts.lifespan,
            rooms_lifespan,
        ],
        on_startup=[document, options_allow_every_method],
        plugins=[StrictStructSchemaPlugin()],
        openapi_config=OpenAPIConfig(
            title="Blendtune",
            version="0.1.0",
            description="Accounts, catalog, uploads, releases, playlists, blends and mashups.",
            path="/schema",
            render_plugins=[web.docs_render_plugin()],
        ),
        request_max_body_size=settings.max_request_bytes,
        # Logging is configured by server.logs; Litestar's own config would replace it.
        logging_config=None,
        state=State({"services": services}),
        debug=False,
    )
    return app


def create_server(settings: Settings | None = None) -> Any:
    """What ``blendtune serve`` runs: the app, with room WebSockets handed straight to the
    rooms endpoint once it is up.

    Through Litestar a WebSocket connection sits, for its whole life, under the router, the
    exception-handling and metrics middleware and the mount (suspended coroutines and their
    frames, kept per connection); none of it does anything for a room connection (the rooms
    endpoint answers every close code itself, and the HTTP metrics skip WebSockets). Idle
    connections cost about 4 KiB less each (docs/performance.md, *Memory per idle
    connection*). Everything else, plain HTTP on ``/rooms`` (426) included, goes to Litestar.
    """
    app = create_app(settings)
    state = app.state

    # Not a coroutine function: it hands over the target's coroutine, so no frame of its own
    # stays per connection (``blendtune serve`` tells uvicorn it is ASGI 3).
    def server(scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] == "websocket" and scope["path"].startswith("/rooms/"):
            endpoint = state.get("rooms_endpoint")
            if endpoint is not None:
                return cast(Awaitable[None], endpoint(scope, receive, send))
        return app(scope, receive, send)

    return server


def rooms_context(services: Services) -> RoomsContext:
    """What the rooms core gets from the app: its settings, the pool and Redis, and how a
    WebSocket upgrade is authenticated (token in the hello, else Bearer header or cookie)."""
    settings = services.settings
    assert settings.redis_url is not None

    async def authenticate(token: str | None, headers: Sequence[tuple[bytes, bytes]]) -> Any:
        principal = await auth.authenticate(services, token or _upgrade_token(headers))
        return None if principal is None else principal.user_id

    return RoomsContext(
        settings=RoomSettings.pick(
            settings, redis_url=settings.redis_url, public_url=settings.effective_public_url
        ),
        kinds=services,
        registry=services.metrics.registry,
        authenticate=authenticate,
    )


def _upgrade_token(raw: Sequence[tuple[bytes, bytes]]) -> str | None:
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key == "cookie":
            with contextlib.suppress(CookieError):
                jar: SimpleCookie = SimpleCookie()
                jar.load(text)
                if auth.SESSION_COOKIE in jar:
                    cookies[auth.SESSION_COOKIE] = jar[auth.SESSION_COOKIE].value
        else:
            headers[key] = text
    return auth.token_from_headers(headers, cookies)
