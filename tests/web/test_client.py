"""The web client's room logic (server/static/app.js) run under Node.

``client_unit.mjs`` scripts a socket through the protocol's cases (gaps, resume, close codes,
rejections); ``drive_rooms.mjs`` runs two members' RoomClients against a real server and checks
that every client's state equals a fresh snapshot, so the client's reducers cannot drift from
the server's. The page itself is tested in a real browser (test_browser.py). Skipped where
Node.js is not installed.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import asyncpg
import httpx
import pytest

from rooms import fractional
from tests.blends.support import create_blend, import_taste, join, songs, wait_for_weave
from tests.support import ServerProcess, make_user

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")


def node(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run(
        [NODE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_room_client_follows_the_protocol() -> None:
    done = node(str(HERE / "client_unit.mjs"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_fractional_keys_match_the_server() -> None:
    # Keys as a room accumulates them: inserts between random neighbours, so deep keys too.
    rng = random.Random(7)
    keys: list[str] = []
    cases: list[tuple[str | None, str | None, int]] = []
    for _ in range(300):
        at = rng.randint(0, len(keys))
        before = keys[at - 1] if at > 0 else None
        after = keys[at] if at < len(keys) else None
        cases.append((before, after, rng.randint(1, 7)))
        keys.insert(at, fractional.key_between(before, after))
    expected = [
        [fractional.key_between(b, a), fractional.keys_between(b, a, n)] for b, a, n in cases
    ]
    script = (
        "import('./server/static/app.js').then(({keyBetween, keysBetween}) => {"
        " const cases = JSON.parse(process.argv[1]);"
        " console.log(JSON.stringify(cases.map(([b, a, n]) =>"
        " [keyBetween(b, a), keysBetween(b, a, n)])));"
        "})"
    )
    done = node("--input-type=module", "-e", script, json.dumps(cases))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected


async def test_room_client_against_a_real_server(
    server: ServerProcess, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    alice, bob = await make_user(db), await make_user(db)
    await import_taste(http, alice, songs("shared", 1) + songs("alice", 20))
    await import_taste(http, bob, songs("bob", 40) + songs("shared", 1))
    blend = await create_blend(http, alice, "Web", playlist_length=12)
    joined = await join(http, bob, blend["share_code"]["code"])
    assert joined.status_code == 200, joined.text
    await wait_for_weave(http, alice, blend["id"], members=2)
    created = await http.post(
        "/mashups",
        json={"name": "Web mashup", "target_duration_seconds": 30},
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text

    arguments = {
        "http": server.url,
        "ws": server.ws_url,
        "blend": blend["id"],
        "mashup": created.json()["id"],
        "alice": {"id": str(alice.id), "token": alice.token},
        "bob": {"id": str(bob.id), "token": bob.token},
    }
    done = node(
        "--experimental-websocket",
        "--no-warnings",
        str(HERE / "drive_rooms.mjs"),
        json.dumps(arguments),
    )
    assert done.returncode == 0, done.stderr + done.stdout
    # An empty timeline renders as silence: the preview is announced and served as MP3.
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"preview": "preview_ready", "code": None, "status": 200, "type": "audio/mpeg"}
