"""Schema-driven fuzzing: schemathesis generates requests for every operation in
/schema/openapi.json (valid and invalid ones) and no response may be a 5xx.

Runs the schemathesis CLI against a server process of its own, signed in as a user with
every role, with a bounded number of examples per operation. Operations that would end
the fuzzer's own session or account are left out (they are tested by their areas).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import StartServer
from tests.support import make_user

# Operations that sign the fuzzer out or delete its account would turn the rest of the
# run into 401s; everything else is fuzzed.
EXCLUDED_PATHS_REGEX = r"^/auth/(logout|sessions)|^/me$"


def _st() -> str:
    found = Path(sys.executable).with_name("st")
    if found.exists():
        return str(found)
    located = shutil.which("st")
    if located is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return located


@pytest.mark.timeout(180)
async def test_fuzzing_the_openapi_schema_finds_no_server_errors(
    start_server: StartServer, db: asyncpg.Connection, tmp_path: Path
) -> None:
    server = await start_server(env={"BLENDTUNE_LOG_LEVEL": "warning"})
    user = await make_user(db, roles=("artist", "admin", "moderator"))
    report = tmp_path / "schemathesis.txt"
    process = await asyncio.create_subprocess_exec(
        _st(),
        "run",
        f"{server.url}/schema/openapi.json",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "12",
        "--workers",
        "2",
        "--exclude-path-regex",
        EXCLUDED_PATHS_REGEX,
        "--header",
        f"Authorization: Bearer {user.token}",
        "--seed",
        "20261125",
        stdout=report.open("wb"),
        stderr=asyncio.subprocess.STDOUT,
    )
    code = await process.wait()
    output = report.read_text(errors="replace")
    print(output[-6000:])
    assert code == 0, output[-12000:] + "\n--- server log ---\n" + server.log()
