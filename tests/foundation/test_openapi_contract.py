"""The served OpenAPI document tells the truth: real answers of every operation, errors
included, are documented there (status, problem code and body schema), and the document
says how to authenticate. The fuzzer (tests/test_openapi_fuzz.py) checks the same on
generated requests; this test is the deterministic part."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import asyncpg
import httpx
import jsonschema_rs
import pytest

from server.openapi import CODES
from tests.catalog.helpers import track_body
from tests.support import ROOT, ServerProcess, make_user, new_address

METHODS = ("get", "put", "post", "patch", "delete")
# Values for path parameters that are not ids.
NAMED_PARAMETERS = {"provider": "spotify", "time_range": "short_term", "role": "artist", "seq": "1"}
# What these do with a valid session would end it: they get a session of their own.
ENDS_SESSION = {("post", "/auth/logout"), ("delete", "/auth/sessions")}


@pytest.fixture(scope="module")
async def document(server: ServerProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: NAMED_PARAMETERS.get(m.group(1), str(uuid.uuid4())), path)


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


def _check_answer(
    document: dict[str, Any], method: str, path: str, response: httpx.Response
) -> None:
    """The status is documented for the operation; an error is a problem detail whose code
    the documented response names; the body matches the documented schema."""
    operation = document["paths"][path][method]
    status = str(response.status_code)
    where = f"{method.upper()} {path} -> {status}: {response.text[:300]}"
    assert status in operation["responses"], where
    documented = operation["responses"][status]
    if response.status_code == 204:
        assert not documented.get("content") and response.content == b"", where
        return
    content_type = response.headers["content-type"].split(";")[0]
    assert content_type in documented["content"], where
    schema = documented["content"][content_type]["schema"]
    errors = [str(e) for e in _validator(document, schema).iter_errors(response.json())]
    assert errors == [], where + "\n" + "\n".join(errors)
    if response.status_code >= 400:
        assert content_type == "application/problem+json", where
        assert f"`{response.json()['code']}`" in documented["description"], where


async def test_the_document_declares_how_to_authenticate(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }
    assert (schemes["session_cookie"]["in"], schemes["session_cookie"]["name"]) == (
        "cookie",
        "bt_session",
    )
    operations = _operations(document)
    secured = [(m, p) for m, p, op in operations if op.get("security")]
    assert ("get", "/me") in secured and ("post", "/blends") in secured
    assert ("post", "/auth/login") not in secured and ("get", "/healthz") not in secured
    for method, path, operation in operations:
        if operation.get("security"):
            assert operation["security"] == [{"bearer": []}, {"session_cookie": []}]
            assert "401" in operation["responses"], (method, path)


async def test_the_schemas_say_what_the_server_enforces(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    text = json.dumps(document)
    # tuple[X, ...] is an array of X, not "X or anything".
    assert schemas["Timeline"]["properties"]["clips"]["items"] == {
        "$ref": "#/components/schemas/Clip"
    }
    assert '{"oneOf": [{"$ref": "#/components/schemas/Clip"}, {}]}' not in text
    assert ", {}]" not in text
    # Unknown fields are refused, and said to be.
    for name in ("PlaylistCreate", "TrackCreate", "CreateBlend", "PreviewWindow", "SectionIn"):
        assert schemas[name]["additionalProperties"] is False, name
    # Bounds on optional fields, a 0 minimum included.
    assert schemas["PlaylistTrackAdd"]["properties"]["position"]["minimum"] == 0
    assert schemas["PlaylistTrackMove"]["properties"]["position"]["minimum"] == 0
    # The preview limit is the configured one (30 s by default), not the type's 3600.
    assert schemas["PreviewWindow"]["properties"]["duration_seconds"]["maximum"] == 30
    assert "`end_time` must be greater than `start_time`" in schemas["SectionIn"]["description"]
    cursor = next(
        p for p in document["paths"]["/tracks"]["get"]["parameters"] if p["name"] == "cursor"
    )
    assert cursor["schema"]["minLength"] == 1
    for method, path in (("post", "/auth/logout"), ("delete", "/me")):
        assert not document["paths"][path][method]["responses"]["204"].get("content")


async def test_every_operation_documents_its_errors(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        for status, response in responses.items():
            if int(status) >= 400:
                assert set(response["content"]) == {"application/problem+json"}, where
                assert re.match(r"`[a-z_]+`", response["description"]), (where, status)
        if path not in ("/healthz", "/metrics"):
            assert "503" in responses, where
        if "requestBody" in operation and path != "/uploads":
            assert {"400", "413"} <= set(responses), where


async def test_real_answers_of_every_operation_match_the_document(
    server: ServerProcess, db: asyncpg.Connection, document: dict[str, Any]
) -> None:
    """Anonymous, then signed in on ids that do not exist, with an empty and an oversized
    body: every answer is documented, down to its problem code and body schema."""
    oversized = b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        user = await make_user(db)
        for method, path, operation in _operations(document):
            url = _url(path)
            body: dict[str, object] | None = {} if "requestBody" in operation else None
            headers = {"X-Forwarded-For": new_address()}
            anonymous = await http.request(method, url, headers=headers, json=body)
            _check_answer(document, method, path, anonymous)
            if operation.get("security"):
                assert anonymous.status_code == 401, (method, path)
                signed_in = (await make_user(db)) if (method, path) in ENDS_SESSION else user
                headers |= signed_in.headers
                response = await http.request(method, url, headers=headers, json=body)
                _check_answer(document, method, path, response)
            if "requestBody" in operation:
                content_type = {"content-type": "application/json"}
                response = await http.request(
                    method, url, headers=headers | content_type, content=oversized
                )
                _check_answer(document, method, path, response)
                if path != "/uploads":
                    assert response.status_code == 413, (method, path, response.text[:200])


async def test_real_resources_match_their_schemas(
    http: httpx.AsyncClient, db: asyncpg.Connection, document: dict[str, Any]
) -> None:
    user = await make_user(db, roles=("artist",))
    headers = user.headers
    body = track_body(
        sections=[{"section_name": "intro", "start_time": 0, "end_time": 8}],
        creators=[{"creator_name": "A", "split_percentage": 50}],
        instruments=[{"instrument_type": "synth", "is_primary": True}],
    )
    track = await http.post("/tracks", json=body, headers=headers)
    playlist = await http.post("/playlists", json={"name": "Contract"}, headers=headers)
    blend = await http.post("/blends", json={"name": "Contract"}, headers=headers)
    mashup = await http.post(
        "/mashups", json={"name": "Contract", "target_duration_seconds": 60}, headers=headers
    )
    for response, method, path in (
        (track, "post", "/tracks"),
        (playlist, "post", "/playlists"),
        (blend, "post", "/blends"),
        (mashup, "post", "/mashups"),
    ):
        _check_answer(document, method, path, response)
    reads = [
        ("/tracks/{track_id}", {"track_id": track.json()["id"]}),
        ("/playlists/{playlist_id}", {"playlist_id": playlist.json()["id"]}),
        ("/blends/{blend_id}", {"blend_id": blend.json()["id"]}),
        ("/mashups/{mashup_id}", {"mashup_id": mashup.json()["id"]}),
        ("/tracks", {}),
        ("/playlists", {}),
        ("/blends", {}),
        ("/mashups", {}),
        ("/me", {}),
        ("/auth/whoami", {}),
        ("/taste/connections", {}),
    ]
    for path, ids in reads:
        response = await http.get(path.format(**ids), headers=headers)
        assert response.status_code == 200, (path, response.text)
        _check_answer(document, "get", path, response)
    regenerate = await http.post(f"/blends/{blend.json()['id']}/regenerate", headers=headers)
    assert regenerate.status_code == 202
    assert regenerate.json() == {"blend_id": blend.json()["id"], "status": "pending"}
    _check_answer(document, "post", "/blends/{blend_id}/regenerate", regenerate)


@pytest.mark.parametrize("path", ["/me", "/tracks", "/playlists", "/blends", "/mashups"])
async def test_options_lists_every_method(http: httpx.AsyncClient, path: str) -> None:
    expected = {
        "/me": "DELETE, GET, OPTIONS, PATCH",
        "/tracks": "GET, OPTIONS, POST",
        "/playlists": "GET, OPTIONS, POST",
        "/blends": "GET, OPTIONS, POST",
        "/mashups": "GET, OPTIONS, POST",
    }
    response = await http.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == expected[path]
    detail = await http.options(f"{path}/{uuid.uuid4()}") if path != "/me" else None
    if detail is not None:
        assert {"DELETE", "GET", "PATCH"} <= set(detail.headers["allow"].split(", "))


def test_every_problem_code_raised_is_described_once() -> None:
    """Each `Problem(status, "code", ...)` in the server has its line in CODES, with the same
    status, so that the document can describe it."""
    raised = set()
    for source in (ROOT / "server").rglob("*.py"):
        text = source.read_text()
        for status, code in re.findall(r'Problem\(\s*(\d{3}),\s*"([a-z_]+)"', text):
            raised.add((code, int(status)))
    missing = {(code, status) for code, status in raised if CODES.get(code, (0,))[0] != status}
    assert missing == set()
