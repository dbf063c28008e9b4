"""The Litestar app factory. Importing this module does no work; ``create_app`` does."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from server import health, logs
from server.metrics import metrics_endpoint, metrics_middleware
from server.problems import EXCEPTION_HANDLERS
from server.services import build_services, get_services, services_lifespan
from server.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    logs.configure(settings.log_level, settings.log_format)
    services = build_services(settings)
    app = Litestar(
        route_handlers=[health.healthz, health.readyz, metrics_endpoint],
        dependencies={"services": Provide(get_services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[metrics_middleware],
        lifespan=[services_lifespan],
        openapi_config=OpenAPIConfig(
            title="Blendtune",
            version="0.1.0",
            description="Accounts, catalog, uploads, releases, playlists, blends and mashups.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=settings.max_request_bytes,
        on_app_init=[_keep(services)],
        debug=False,
    )
    return app


def _keep(services: object) -> "type[object] | object":
    def hook(config: AppConfig) -> AppConfig:
        config.state["services"] = services
        return config

    return hook
