"""Server processes for the history tests: a short snapshot interval and log retention, so
that checkpoints, pruning and "older than the kept history" happen within a few batches."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import Backends, ServerProcess, serving

HISTORY_ENV = {
    "BLENDTUNE_ROOM_SNAPSHOT_EVERY": "4",
    "BLENDTUNE_ROOM_LOG_RETENTION": "8",
    "BLENDTUNE_ROOM_OP_ID_HOURS": "0",
    "BLENDTUNE_WS_OPS_PER_SECOND": "100",
    # The rooms tests' kind, which keeps no history.
    "BLENDTUNE_ROOM_KINDS": "tests.rooms.notes:NotesKind",
}


@pytest.fixture(scope="package")
async def pair(backends: Backends) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two independent server processes on one database and one Redis."""
    async with serving(backends, HISTORY_ENV) as (a, b):
        yield a, b
