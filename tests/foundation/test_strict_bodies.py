"""JSON bodies are decoded strictly: a value of the wrong JSON type is refused with
`400 invalid_request` (never converted), and so is malformed JSON, on every endpoint."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.catalog.helpers import make_track, track_body
from tests.support import make_user


def _assert_invalid(response: httpx.Response, key: str | None = None) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "invalid_request"
    if key is not None:
        assert [e.get("key") for e in problem["errors"]] == [key], problem


@pytest.mark.parametrize("value", [1, 0, "true", "false", None])
async def test_a_boolean_must_be_a_json_boolean(
    http: httpx.AsyncClient, db: asyncpg.Connection, value: Any
) -> None:
    user = await make_user(db)
    response = await http.post(
        "/playlists", json={"name": "strict", "is_public": value}, headers=user.headers
    )
    _assert_invalid(response, "is_public")
    assert await db.fetchval("SELECT count(*) FROM playlists WHERE user_id = $1", user.id) == 0


async def test_a_number_must_be_a_json_number(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await make_user(db, roles=("artist",))
    body = track_body(tempo="120")
    response = await http.post("/tracks", json=body, headers=user.headers)
    _assert_invalid(response, "tempo")
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tracks WHERE audio_filename = $1", body["audio_filename"]
        )
        == 0
    )
    # An integer where a float is expected is a number, not a conversion.
    assert (
        await http.post("/tracks", json=track_body(tempo=120), headers=user.headers)
    ).status_code == 201


async def test_nested_values_are_strict_too(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await make_user(db, roles=("artist",))
    track = await make_track(http, user)
    response = await http.post(
        f"/tracks/{track['id']}/instruments",
        json={"instrument_type": "synth", "is_primary": 0},
        headers=user.headers,
    )
    _assert_invalid(response, "is_primary")
    response = await http.post(
        "/tracks",
        json=track_body(sections=[{"section_name": "intro", "start_time": "0", "end_time": 8}]),
        headers=user.headers,
    )
    _assert_invalid(response, "sections[0].start_time")
    details = (await http.get(f"/tracks/{track['id']}", headers=user.headers)).json()
    assert details["instruments"] == []


@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [
        ("POST", "/auth/register", False),
        ("POST", "/auth/login", False),
        ("POST", "/playlists", True),
        ("POST", "/tracks", True),
        ("PATCH", "/me", True),
        ("POST", "/blends", True),
        ("POST", "/mashups", True),
    ],
)
async def test_malformed_json_is_invalid_request_everywhere(
    http: httpx.AsyncClient, db: asyncpg.Connection, method: str, path: str, auth: bool
) -> None:
    user = await make_user(db, roles=("artist",))
    headers = {"content-type": "application/json", **(user.headers if auth else {})}
    response = await http.request(method, path, content=b"{", headers=headers)
    _assert_invalid(response)
    assert "malformed JSON" in response.json()["errors"][0]["message"]
