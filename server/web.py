"""The static web client: ``/`` is its page, ``/static/...`` its script and style sheet.

Every script lives in ``static/app.js`` (no inline code), so the page is served with a strict
Content-Security-Policy. See docs/web-client.md.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.response import File
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"

# Scripts, styles, fetches, sockets and audio come from this origin only ('self' covers ws(s):
# to the same host in CSP Level 3 browsers); nothing inline, no plug-ins, no framing.
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


def _secure(response: Response[object]) -> Response[object]:
    response.headers.update(SECURITY_HEADERS)
    return response


@get("/", include_in_schema=False, sync_to_thread=False, cache_control=_NO_CACHE)
def index() -> File:
    """The client's page."""
    return File(
        STATIC_DIR / "index.html",
        media_type="text/html",
        content_disposition_type="inline",
        headers=SECURITY_HEADERS,
    )


def create_router() -> Router:
    """``/`` and ``/static/...``; a missing file is a 404 problem like any unknown path."""
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        name="web-static",
        cache_control=_NO_CACHE,
        after_request=_secure,
    )
    return Router(path="/", route_handlers=[index, static])
