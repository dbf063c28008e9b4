"""The static web client: ``/`` is its page, ``/static/...`` its modules and style sheet.

Every script lives in ``static/*.js`` (no inline code), so the page is served with a strict
Content-Security-Policy. ``/verify`` and ``/reset-password`` are the same page (the emailed
links land there; the page confirms the token, or sets the new password, through the API).
The OpenAPI viewer at ``/schema`` loads Swagger UI from this server (``/vendor/swagger-ui/``,
the files the ``swagger-ui-py`` wheel ships), so it works without internet. See
docs/web-client.md.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.response import File
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_UI_PREFIX = "/vendor/swagger-ui"
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css")

# Scripts, styles, fetches, sockets and audio come from this origin only ('self' covers ws(s):
# to the same host in CSP Level 3 browsers); nothing inline, no plug-ins, no framing. Canvas
# drawing and element.style (CSSOM) are not inline styles, so the waveforms need nothing more.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; media-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Revalidate every time (ETag / Last-Modified): a deploy's new client is picked up at once.
_NO_CACHE = CacheControlHeader(no_cache=True)
# Swagger UI's files change only with the package: a day is plenty.
_VENDOR_CACHE = CacheControlHeader(max_age=86400, public=True)


def _secure(response: Response[object]) -> Response[object]:
    response.headers.update(SECURITY_HEADERS)
    return response


def _page() -> File:
    return File(
        STATIC_DIR / "index.html",
        media_type="text/html",
        content_disposition_type="inline",
        headers=SECURITY_HEADERS,
    )


@get("/", include_in_schema=False, sync_to_thread=False, cache_control=_NO_CACHE)
def index() -> File:
    """The client's page."""
    return _page()


@get("/verify", include_in_schema=False, sync_to_thread=False, cache_control=_NO_CACHE)
def verify_page() -> File:
    """Where the verification email's link lands: the page confirms the token it carries."""
    return _page()


@get("/reset-password", include_in_schema=False, sync_to_thread=False, cache_control=_NO_CACHE)
def reset_page() -> File:
    """Where the password-reset email's link lands: the page asks for the new password."""
    return _page()


@get("/favicon.ico", include_in_schema=False, sync_to_thread=False, cache_control=_VENDOR_CACHE)
def favicon_ico() -> File:
    return File(STATIC_DIR / "favicon.ico", media_type="image/x-icon", headers=SECURITY_HEADERS)


@get("/favicon.svg", include_in_schema=False, sync_to_thread=False, cache_control=_VENDOR_CACHE)
def favicon_svg() -> File:
    return File(STATIC_DIR / "favicon.svg", media_type="image/svg+xml", headers=SECURITY_HEADERS)


def swagger_ui_dir() -> Path:
    """Swagger UI's files as the ``swagger-ui-py`` wheel installs them."""
    return Path(str(resources.files("swagger_ui") / "static"))


def docs_render_plugin() -> SwaggerRenderPlugin:
    """Swagger UI at ``/schema`` with its scripts, style sheet and icon from this server."""
    return SwaggerRenderPlugin(
        js_url=f"{SWAGGER_UI_PREFIX}/swagger-ui-bundle.js",
        css_url=f"{SWAGGER_UI_PREFIX}/swagger-ui.css",
        standalone_preset_js_url=f"{SWAGGER_UI_PREFIX}/swagger-ui-standalone-preset.js",
        favicon="<link rel='icon' type='image/svg+xml' href='/favicon.svg'>",
    )


def create_router() -> Router:
    """The page, its files and Swagger UI's; a missing file is a 404 problem like any path."""
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        name="web-static",
        cache_control=_NO_CACHE,
        after_request=_secure,
    )
    vendor = create_static_files_router(
        path=SWAGGER_UI_PREFIX,
        directories=[swagger_ui_dir()],
        name="swagger-ui",
        cache_control=_VENDOR_CACHE,
    )
    return Router(
        path="/",
        route_handlers=[index, verify_page, reset_page, favicon_ico, favicon_svg, static, vendor],
    )
