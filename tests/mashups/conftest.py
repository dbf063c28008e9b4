"""Two server processes sharing one database, one Redis and one storage directory."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator

import pytest

from tests.support import Backends, ServerProcess


@pytest.fixture(scope="package")
async def pair(backends: Backends) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Like a deployment: the processes share storage, so each can serve what the other made."""
    shared = tempfile.mkdtemp(prefix="bt-mashups-")
    env = {
        "BLENDTUNE_STORAGE_DIR": f"{shared}/storage",
        "BLENDTUNE_UPLOAD_DIR": f"{shared}/incoming",
        "BLENDTUNE_UPLOAD_POLL_SECONDS": "0.2",
        "BLENDTUNE_MASHUP_PREVIEW_WORKERS": "1",
    }
    a, b = ServerProcess(backends, env), ServerProcess(backends, env)
    a.start()
    b.start()
    try:
        # Started together on a shared 2-core machine, they may take a while to be ready.
        await a.wait_ready(within=90)
        await b.wait_ready(within=90)
        yield a, b
    finally:
        a.terminate()
        b.terminate()
