"""Work-arounds for Litestar 2 bugs fixed only in Litestar 3; each cites its issue."""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute


def options_allow_every_method(app: Litestar) -> None:
    """``on_startup``: ``OPTIONS`` answers ``Allow`` with every method of its path.

    litestar#4169: Litestar creates the implicit OPTIONS handler together with the first
    route of a path, as a closure over that route; when handlers registered later (a
    controller's GET, PATCH and DELETE on ``/me``) rebuild the route, the handler keeps the
    first one, so ``OPTIONS /me`` said ``DELETE, OPTIONS``. Point each closure at its route.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for cell in getattr(handler.fn, "__closure__", None) or ():
                if isinstance(cell.cell_contents, HTTPRoute):
                    cell.cell_contents = route
