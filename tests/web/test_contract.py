"""The web client and the documented contract cannot drift apart silently.

Reads server/static/app.js (the room logic) and the page's modules as text and checks that the
message types it sends and handles, the ops it sends and applies, and the close codes it acts
on are exactly those of docs/protocol.md, docs/blends.md and docs/mashups.md. The client marks
the switch statements this reads with ``// <name>:begin`` / ``// <name>:end`` comments.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec

from dsp.effects import Effect

ROOT = Path(__file__).parent.parent.parent
STATIC = ROOT / "server" / "static"
APP = (STATIC / "app.js").read_text()
# Everything the client runs: the room logic and the page's modules.
CLIENT = "\n".join(path.read_text() for path in sorted(STATIC.glob("*.js")))
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()
BLENDS = (ROOT / "docs" / "blends.md").read_text()
MASHUPS = (ROOT / "docs" / "mashups.md").read_text()


def region(name: str) -> str:
    match = re.search(rf"// {name}:begin\n(.*?)// {name}:end", APP, re.S)
    assert match, f"app.js has no {name} region"
    return match.group(1)


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def case_labels(name: str) -> set[str]:
    return set(re.findall(r'case "?(\w+)"?:', region(name)))


def table_names(text: str) -> set[str]:
    """The first column of a markdown table whose cells start with a `name`."""
    return set(re.findall(r"^\| `(\w+)` \|", text, re.M))


def documented_types() -> set[str]:
    return set(re.findall(r'"type":\s*"(\w+)"', PROTOCOL))


def client_only_types() -> set[str]:
    # "### 1. hello (client → server, ...)", "### ack (server → author)", "### joined / left ...",
    # "### undo, redo, restore (client → server)"
    client: set[str] = set()
    server: set[str] = set()
    heading = r"^### (?:\d+\. )?([\w /,]+?) \((client|server) →"
    for names, side in re.findall(heading, PROTOCOL, re.M):
        (client if side == "client" else server).update(re.split(r", | / ", names))
    # `version` goes both ways: asked for by a client, then told to every member.
    return client - server - {"version"}


def test_sent_message_types_are_the_documented_client_messages() -> None:
    # Everything the client sends goes through RoomClient (the rest of app.js is the page).
    start, end = APP.index("export class RoomClient"), APP.index("export const CLOSE_REASONS")
    room_client = APP[start:end]
    sent = set(re.findall(r'\btype: "(\w+)"', room_client))
    # The `unknown_type` row lists what a client may send.
    row = re.search(r"^\| `unknown_type` \| `type` is not one of (.*)\|$", PROTOCOL, re.M)
    assert row
    allowed = set(re.findall(r"`(\w+)`", row.group(1)))
    assert sent == {
        "hello",
        "ops",
        "presence",
        "ping",
        "pong",
        "undo",
        "redo",
        "restore",
        "version",
    }
    assert sent <= allowed <= documented_types()


def test_every_server_message_is_handled_and_nothing_else() -> None:
    handled = case_labels("messages")
    server_types = documented_types() - client_only_types()
    assert client_only_types() == {"hello", "ops", "undo", "redo", "restore"}
    assert handled == server_types


def test_blend_ops_match_the_blend_room() -> None:
    room = section(BLENDS, "## The blend room", "## Tests")
    documented = table_names(room)
    server_only = set(re.findall(r"^\| `(\w+)` \|[^\n]*\| server only \|", room, re.M))
    assert {"reorder", "remove", "react", "woven"} <= documented and server_only
    assert case_labels("ops:blend") == documented
    assert sent_ops() & documented <= documented - server_only


def test_mashup_ops_match_the_mashup_room() -> None:
    client_ops = table_names(section(MASHUPS, "### Client ops", "### Server ops"))
    server_ops = table_names(section(MASHUPS, "### Server ops", "## Previews"))
    assert {"reorder_clip", "remove_clip"} <= client_ops and "preview_ready" in server_ops
    assert case_labels("ops:mashup") == client_ops | server_ops


def sent_ops() -> set[str]:
    return set(re.findall(r'\bop: "(\w+)"', CLIENT))


def test_sent_ops_are_client_ops_of_their_kind() -> None:
    blend_room = section(BLENDS, "## The blend room", "## Tests")
    blend_client = table_names(blend_room) - set(
        re.findall(r"^\| `(\w+)` \|[^\n]*\| server only \|", blend_room, re.M)
    )
    mashup_client = table_names(section(MASHUPS, "### Client ops", "### Server ops"))
    sent = sent_ops()
    assert {"reorder", "remove", "react", "add", "add_clip", "move_clip", "trim_clip"} <= sent
    assert sent <= blend_client | mashup_client


def test_close_codes_match_the_table() -> None:
    table = section(PROTOCOL, "## Close codes", "## What a client does")
    documented = set(re.findall(r"^\| (\d{4}) \|", table, re.M))
    assert {"1012", "4409", "4401"} <= documented
    assert case_labels("close-codes") == documented


def test_the_client_offers_every_effect_with_the_servers_defaults() -> None:
    # mashup.js: `export const EFFECTS = { type: { label: "...", parameter: default, ... }, ... }`
    text = (STATIC / "mashup.js").read_text()
    found = re.search(r"^export const EFFECTS = \{\n(.*?)^\};", text, re.S | re.M)
    assert found, "mashup.js has no EFFECTS table"
    client = {
        name: {key: float(value) for key, value in re.findall(r"(\w+): (-?[\d.]+)", entry)}
        for name, entry in re.findall(r"^  (\w+): \{ (.*) \},$", found.group(1), re.M)
    }
    server = {}
    for cls in typing.get_args(Effect):
        defaults = msgspec.to_builtins(cls())
        server[defaults.pop("type")] = defaults
    assert client == server
