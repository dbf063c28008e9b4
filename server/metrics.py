"""Prometheus metrics: one registry per app, served at ``/metrics``.

Each process exposes its own figures (scrape every process, or every worker port); nothing
is registered at import time.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "blendtune_http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "blendtune_http_request_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            registry=self.registry,
        )


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            metrics: Metrics = scope["litestar_app"].state.services.metrics
            # The route template, not the raw path, keeps label cardinality bounded.
            route = scope.get("path_template") or "unmatched"
            method = scope["method"]  # type: ignore[typeddict-item]
            metrics.http_requests.labels(method, route, str(status)).inc()
            metrics.http_latency.labels(method, route).observe(time.perf_counter() - started)

    return middleware


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    metrics: Metrics = request.app.state.services.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
