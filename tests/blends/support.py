"""Helpers for the blend tests: tastes, waiting for weaves."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import TestUser, eventually


def songs(prefix: str, count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct top tracks; the same prefix and index give the same song."""
    return [
        {
            "track_id": f"{prefix}-{i}",
            "name": f"{prefix.title()} Song {i}",
            "artist": f"{prefix.title()} Artist {i % 5}",
            "isrc": f"QZ{prefix[:3].upper():>3}{i:07d}"[:12],
            "duration_ms": 180_000 + i,
        }
        for i in range(start, start + count)
    ]


async def import_taste(
    http: httpx.AsyncClient,
    user: TestUser,
    tracks: list[dict[str, Any]],
    *,
    provider: str = "spotify",
    time_range: str = "medium_term",
) -> None:
    response = await http.put(
        f"/taste/connections/{provider}",
        json={"provider_user_id": user.username, "access_token": f"access-{user.username}"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    response = await http.put(
        f"/taste/connections/{provider}/top-tracks/{time_range}",
        json={"tracks": tracks},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text


async def create_blend(
    http: httpx.AsyncClient, owner: TestUser, name: str = "Friday mix", **settings: int
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if settings:
        body["settings"] = settings
    response = await http.post("/blends", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    blend: dict[str, Any] = response.json()
    return blend


async def join(http: httpx.AsyncClient, user: TestUser, code: str) -> httpx.Response:
    return await http.post("/blends/join", json={"code": code}, headers=user.headers)


async def wait_for_weave(
    http: httpx.AsyncClient,
    user: TestUser,
    blend_id: str,
    *,
    members: int,
    within: float = 30.0,
) -> dict[str, Any]:
    """The blend once it is completed with ``members`` accepted members woven in."""

    async def woven() -> dict[str, Any] | None:
        response = await http.get(f"/blends/{blend_id}", headers=user.headers)
        assert response.status_code == 200, response.text
        blend: dict[str, Any] = response.json()
        accepted = [m for m in blend["members"] if m["status"] == "accepted"]
        pairs = (blend["taste_match"] or {}).get("pairs", [])
        done = (
            blend["status"] == "completed"
            and len(accepted) == members
            and len(pairs) == members * (members - 1) // 2
        )
        return blend if done else None

    return await eventually(woven, within=within, what=f"blend {blend_id} woven")
