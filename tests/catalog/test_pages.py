"""Newest-first lists (playlists, releases, uploads) page with an opaque keyset cursor."""

import asyncpg
import httpx
import pytest

from tests.support import make_user


async def _all_pages(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await http.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize(
    ("path", "body"),
    [("/playlists", {"name": "P"}), ("/releases", {"title": "R", "genre": "House"})],
)
async def test_pages_cover_everything_once_newest_first(
    http: httpx.AsyncClient, db: asyncpg.Connection, path: str, body: dict[str, str]
) -> None:
    owner = await make_user(db, roles=("artist",))
    created = []
    for _ in range(5):
        response = await http.post(path, json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    assert await _all_pages(http, path, owner.headers) == list(reversed(created))
    # Someone else sees none of them in their own list.
    other = await make_user(db, roles=("artist",))
    assert await _all_pages(http, path, other.headers) == []


@pytest.mark.parametrize("path", ["/playlists", "/releases", "/uploads"])
async def test_a_forged_cursor_is_refused(
    http: httpx.AsyncClient, db: asyncpg.Connection, path: str
) -> None:
    user = await make_user(db)
    # [1], {"a":1}, ["x","y"]: well-formed, but not cursors this server wrote.
    for cursor in ("WzFd", "eyJhIjoxfQ", "WyJ4IiwieSJd"):
        response = await http.get(path, params={"cursor": cursor}, headers=user.headers)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_cursor"
