"""OpenAPI describes every accounts endpoint with its bodies and problem responses."""

from __future__ import annotations

import httpx

from tests.support import ServerProcess

EXPECTED = {
    ("post", "/auth/register"): {"201", "400", "409", "413", "429", "503"},
    ("post", "/auth/verify"): {"200", "400", "413", "429"},
    ("post", "/auth/verify/resend"): {"202", "401", "409", "429"},
    ("post", "/auth/login"): {"200", "400", "401", "413", "429", "503"},
    ("post", "/auth/logout"): {"204", "401"},
    ("get", "/auth/sessions"): {"200", "401"},
    ("delete", "/auth/sessions"): {"204", "401"},
    ("delete", "/auth/sessions/{session_id}"): {"204", "401", "404"},
    ("post", "/auth/password-reset"): {"202", "400", "413", "429"},
    ("post", "/auth/password-reset/confirm"): {"204", "400", "413", "429"},
    ("get", "/auth/whoami"): {"200", "401"},
    ("get", "/me"): {"200", "401"},
    ("patch", "/me"): {"200", "400", "401", "413"},
    ("put", "/me/password"): {"204", "400", "401", "403", "413", "429"},
    ("delete", "/me"): {"204", "400", "401", "403", "413", "429"},
    ("get", "/users/{user_id}/roles"): {"200", "401", "403", "404"},
    ("put", "/users/{user_id}/roles/{role}"): {"200", "400", "401", "403", "404"},
    ("delete", "/users/{user_id}/roles/{role}"): {"200", "400", "401", "403", "404", "409"},
}


async def test_every_accounts_endpoint_is_documented(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for (method, path), statuses in EXPECTED.items():
        operation = paths[path][method]
        assert statuses <= set(operation["responses"]), (method, path, operation["responses"])
        assert operation.get("description") or operation.get("summary"), (method, path)
        for status, spec in operation["responses"].items():
            if int(status) >= 400:
                content = spec["content"]["application/problem+json"]["schema"]
                assert content == {"$ref": "#/components/schemas/ProblemDetail"}, (path, status)
    register = paths["/auth/register"]["post"]["requestBody"]["content"]["application/json"]
    schema = document["components"]["schemas"][register["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"email", "password", "username"}
    assert schema["properties"]["password"]["minLength"] == 10
