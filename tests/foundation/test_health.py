import httpx

from tests.conftest import StartServer
from tests.support import RedisProcess


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_unknown_route_is_a_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404 and body["code"] == "not_found" and body["title"] == "Not Found"


async def test_wrong_method_is_a_problem(http: httpx.AsyncClient) -> None:
    response = await http.post("/healthz")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_openapi_and_metrics(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/schema/openapi.json")).json()
    assert "/readyz" in schema["paths"]
    await http.get("/healthz")
    metrics = (await http.get("/metrics")).text
    assert 'blendtune_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics


async def test_readyz_reports_redis_outage(start_server: StartServer) -> None:
    redis = RedisProcess()
    redis.start()
    try:
        server = await start_server(env={"BLENDTUNE_REDIS_URL": redis.url})
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/readyz")).status_code == 200
            redis.stop()
            response = await client.get("/readyz")
            assert response.status_code == 503
            body = response.json()
            assert body["code"] == "not_ready"
            assert "redis" in body["detail"] and "database" not in body["detail"]
            # It recovers on its own when Redis is back.
            redis.start()
            for _ in range(50):
                if (await client.get("/readyz")).status_code == 200:
                    break
            assert (await client.get("/readyz")).status_code == 200
    finally:
        redis.stop()


async def test_every_documented_error_is_a_problem_detail(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/schema/openapi.json")).json()
    assert "ProblemDetail" in schema["components"]["schemas"]
    checked = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                if int(status) >= 400 and "content" in response:
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )
                    checked += 1
    assert checked > 20
