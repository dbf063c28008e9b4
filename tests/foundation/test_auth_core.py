"""The shared authentication function, through a real endpoint that needs a principal."""

import asyncpg
import httpx

from tests.support import make_user


async def test_bearer_and_cookie_tokens(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    user = await make_user(db)
    # /readyz needs nothing; the probe endpoint below is any route needing a principal.
    ok = await http.get("/auth/whoami", headers=user.headers)
    assert ok.status_code == 200 and ok.json()["user_id"] == str(user.id)
    cookie = await http.get("/auth/whoami", cookies={"bt_session": user.token})
    assert cookie.status_code == 200
    for bad in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await http.get("/auth/whoami", headers=bad)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"


async def test_expired_session_is_refused(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    user = await make_user(db)
    await db.execute(
        "UPDATE sessions SET created_at = now() - interval '9 days',"
        " expires_at = now() - interval '1 day' WHERE user_id = $1",
        user.id,
    )
    assert (await http.get("/auth/whoami", headers=user.headers)).status_code == 401
