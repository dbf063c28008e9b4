"""The deploy tests drive rooms of the test ``notes`` kind, like the rooms tests."""

from tests.rooms.conftest import notes, redis

__all__ = ["notes", "redis"]
