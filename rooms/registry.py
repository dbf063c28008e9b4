"""Which room kinds a process serves: the built-in ones plus ``BLENDTUNE_ROOM_KINDS``.

Kinds are named by import path, ``module:attribute``, where the attribute is a ``RoomKind``
subclass (instantiated with no arguments) or an instance. Nothing is imported until
``load_kinds`` runs (at app start-up), so importing ``rooms`` stays free of side effects.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from rooms.context import RoomSettings
from rooms.kinds import RoomKind

# The product's own kinds. Add a line here when a domain ships one.
BUILTIN_KINDS: tuple[str, ...] = (
    "server.blends.room:BlendRoom",
    "server.mashups.room:MashupRoom",
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class KindError(RuntimeError):
    """A configured kind cannot be loaded; the message names it."""


def import_kind(path: str) -> RoomKind[Any, Any]:
    module_name, _, attribute = path.strip().partition(":")
    if not module_name or not attribute:
        raise KindError(f"room kind {path!r} is not of the form module:attribute")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise KindError(f"cannot import room kind {path!r}: {exc}") from exc
    kind = target() if isinstance(target, type) else target
    if not isinstance(kind, RoomKind):
        raise KindError(f"{path!r} is not a RoomKind")
    if not _NAME.match(getattr(kind, "name", "")):
        raise KindError(f"room kind {path!r} has an invalid name {kind.name!r}")
    return kind


def load_kinds(settings: RoomSettings) -> dict[str, RoomKind[Any, Any]]:
    """Every kind this process serves, by name. Raises ``KindError`` on a bad entry."""
    paths = [*BUILTIN_KINDS, *(p for p in settings.room_kinds.split(",") if p.strip())]
    kinds: dict[str, RoomKind[Any, Any]] = {}
    for path in paths:
        kind = import_kind(path)
        if kind.name in kinds:
            raise KindError(f"two room kinds are named {kind.name!r}")
        kinds[kind.name] = kind
    return kinds
