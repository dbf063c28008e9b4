"""The Redis names the rooms core uses, with hash tags so that a Redis Cluster keeps together
what is used together (only the part in braces is hashed to pick a slot):

- a room's pub/sub channel and its member hash are on the room's slot, so the room's traffic
  and roster stay on one shard (sharded pub/sub: ``rooms.sharded``);
- every process's heartbeat key is on one slot, so one MGET reads them all.

On a single Redis the braces are just characters of the name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

Keys = Callable[..., str]


def hash_tag(text: str) -> str:
    if "{" in text or "}" in text:
        raise ValueError(f"a hash tag cannot contain braces: {text!r}")
    return "{" + text + "}"


def room_channel(keys: Keys, room_id: uuid.UUID) -> str:
    return keys("room", hash_tag(str(room_id)))


def room_members(keys: Keys, room_id: uuid.UUID) -> str:
    return keys("room", hash_tag(str(room_id)), "members")


def proc_key(keys: Keys, proc_id: str) -> str:
    """A process's heartbeat key (see ``rooms.hub``)."""
    return keys(hash_tag("proc"), proc_id)


def control_channel(keys: Keys) -> str:
    return keys("rooms", "control")
