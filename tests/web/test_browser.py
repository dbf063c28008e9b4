"""A real browser loads the page under its Content-Security-Policy and runs the client.

Optional: runs only where Debian's ``chromium`` is already installed (never installed here).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")


def test_the_client_starts_under_its_csp(server: ServerProcess) -> None:
    # --dump-dom prints the DOM once the page settles: app.js ran (the CSP let it) when the
    # loading view is hidden and, with no session, the sign-in view is shown.
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"{server.url}/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '<section data-view="loading" hidden="">' in done.stdout, done.stdout
    assert '<section data-view="login" aria-labelledby="login-heading">' in done.stdout
