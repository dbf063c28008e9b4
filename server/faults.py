"""Test-only pause points: where a test kills a server process in the middle of a change.

``BLENDTUNE_FAULT_PAUSE=<point>`` makes the process stop for good the first time it reaches
``await pause(settings, "<point>")``, inside whatever transaction the caller holds, after
logging ``paused at fault point <point>``. A test waits for that line, kills the process with
SIGKILL and checks that the database shows the whole change or none of it
(tests/catalog/test_kill_between_steps.py). The points sit between the statements of one
transaction: that is where a crash used to leave half a state change behind (issue #16).

Unset (the default, and always in production) a point costs one string comparison.
"""

from __future__ import annotations

import asyncio
import logging

from server.settings import FaultPoint, Settings

_log = logging.getLogger("blendtune.faults")


async def pause(settings: Settings, point: FaultPoint) -> None:
    """Stop here for good if the settings name ``point`` (``settings.FaultPoint`` lists them,
    so a mistyped name fails at start-up instead of never pausing)."""
    if settings.fault_pause != point:
        return
    _log.warning("paused at fault point %s", point)
    await asyncio.Event().wait()  # never set: the test kills the process here
