"""Wire types of the room history endpoints (the pages and versions themselves are
``rooms.history_store``'s Structs)."""

from __future__ import annotations

from typing import Any

import msgspec

from rooms.history_store import Version


class StateAt(msgspec.Struct, frozen=True):
    """The room's state as it was at ``seq``: the kind's state object (see its docs)."""

    seq: int
    state: Any


class VersionDetail(msgspec.Struct, frozen=True):
    version: Version
    state: Any


class VersionList(msgspec.Struct, frozen=True):
    versions: list[Version]  # newest first
