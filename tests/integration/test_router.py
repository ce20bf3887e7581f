"""Router against real path services, Redis and SecantusDB."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pymongo
import pytest
from covid_common import names
from covid_common.config import (
    GrpcClientConfig,
    GrpcServerConfig,
    RedisPubConfig,
    RouterConfig,
    StorageConfig,
)
from flask import Flask
from grpc_client.app import create_app as create_grpc_client
from grpc_server.server import start as start_grpc_server
from redis_pub.app import create_app as create_redis_pub
from router.app import create_app as create_router

from tests.integration.support import (
    HTTP,
    AppServer,
    ServiceProcess,
    get,
    metric_value,
    post_json,
    sample_case,
    wait_ready,
)
from tests.support.servers import free_port, wait_until


def router_config(path_urls: dict, weights: dict, timeout_s: float = 5.0):
    return RouterConfig(
        log_level="INFO",
        http_port=0,
        route_weights=weights,
        path_urls=path_urls,
        downstream_timeout_s=timeout_s,
    )


@pytest.fixture
def pipeline(mongo_server, mongo_db_name, redis_server, redis_client, tmp_path):
    """Both paths running: returns their base URLs."""
    grpc_server = start_grpc_server(
        GrpcServerConfig(
            log_level="INFO",
            http_port=free_port(),
            grpc_port=free_port(),
            storage=StorageConfig(mongo_server.url, mongo_db_name, redis_server.url),
        ),
        host="127.0.0.1",
    )
    grpc_client = AppServer(
        create_grpc_client(
            GrpcClientConfig("INFO", 0, f"127.0.0.1:{grpc_server.grpc_port}", 3.0)
        )
    )
    redis_pub = AppServer(
        create_redis_pub(RedisPubConfig("INFO", 0, redis_server.url, "pubsub"))
    )
    sub_port = free_port()
    redis_sub = ServiceProcess.module(
        "redis_sub",
        {
            "HTTP_PORT": str(sub_port),
            "MONGO_URL": mongo_server.url,
            "MONGO_DB": mongo_db_name,
            "REDIS_URL": redis_server.url,
        },
        tmp_path / "redis-sub.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{sub_port}", "redis-sub subscribed")
        wait_ready(grpc_client.url, "grpc-client sees a SERVING grpc-server")
        yield {names.PATH_GRPC: grpc_client.url, names.PATH_REDIS: redis_pub.url}
    finally:
        redis_sub.stop()
        redis_pub.stop()
        grpc_client.stop()
        grpc_server.stop(grace_s=1)


@pytest.fixture
def router_for():
    servers = []

    def build(path_urls, weights=None, timeout_s=5.0, seed=7) -> AppServer:
        weights = weights or {path: 50 for path in path_urls}
        config = router_config(path_urls, weights, timeout_s)
        server = AppServer(create_router(config, random.Random(seed)))
        servers.append(server)
        return server

    yield build
    for server in servers:
        server.stop()


def gunicorn_command(service: names.Service) -> list[str]:
    """The service's command, with gunicorn taken from this interpreter's venv."""
    command = list(service.command)
    command[0] = str(Path(sys.executable).parent / command[0])
    return command


def count_documents(mongo_server, db_name: str) -> int:
    with pymongo.MongoClient(mongo_server.url) as client:
        return client[db_name][names.MONGO_CASES_COLLECTION].count_documents({})


def test_records_flow_through_both_paths(
    pipeline, router_for, redis_client, mongo_server, mongo_db_name
):
    router = router_for(pipeline)

    responses = [post_json(router.url + "/cases", sample_case()) for _ in range(30)]

    assert [r.status for r in responses] == [201] * 30
    paths = [r.json()["path"] for r in responses]
    assert set(paths) == {"grpc", "redis"}
    wait_until(
        lambda: redis_client.get(names.RedisKeys.TOTAL) == "30", "30 records counted"
    )
    assert count_documents(mongo_server, mongo_db_name) == 30
    assert redis_client.hget(names.RedisKeys.BY_PATH, "grpc") == str(
        paths.count("grpc")
    )
    body = responses[0].json()
    assert set(body) == {"record_id", "path", "received_at"}
    assert len(body["record_id"]) == 32


def test_duplicate_record_id_on_grpc_path(pipeline, router_for, redis_client):
    router = router_for(pipeline, weights={"grpc": 100, "redis": 0})
    case = sample_case(record_id="client-key-1")

    first = post_json(router.url + "/cases", case)
    second = post_json(router.url + "/cases", case)

    assert first.status == 201
    assert second.status == 200
    assert second.json()["duplicate"] is True
    assert second.json()["record_id"] == "client-key-1"
    assert redis_client.get(names.RedisKeys.TOTAL) == "1"


def test_ready_when_paths_ready(pipeline, router_for):
    router = router_for(pipeline)

    assert get(router.url + "/readyz").status == 200


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b"{", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b'{"age": NaN}', {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b"name=x", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"{}", {}, 415, "unsupported_media_type"),
        (
            b'{"name": "' + b"x" * 17000 + b'"}',
            {"Content-Type": "application/json"},
            413,
            "payload_too_large",
        ),
        (b"\xff\xfe", {"Content-Type": "application/json"}, 400, "invalid_json"),
    ],
)
def test_bad_bodies_get_json_errors(router_for, body, headers, status, error):
    # No path service runs: bad input is rejected before any forward.
    router = router_for({"grpc": f"http://127.0.0.1:{free_port()}"})

    response = HTTP.request("POST", router.url + "/cases", body=body, headers=headers)

    assert response.status == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == error


def test_invalid_fields_get_422(router_for):
    router = router_for({"grpc": f"http://127.0.0.1:{free_port()}"})

    response = post_json(
        router.url + "/cases", sample_case(age="35", state="sleepy", path="grpc")
    )

    assert response.status == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert set(body["fields"]) == {"age", "state", "path"}
    assert body["fields"]["path"] == "unknown field"


def test_unknown_route_and_method_are_json(router_for):
    router = router_for({"grpc": f"http://127.0.0.1:{free_port()}"})

    missing = get(router.url + "/nope")
    wrong_method = get(router.url + "/cases")

    assert missing.status == 404
    assert missing.json()["error"] == "not_found"
    assert wrong_method.status == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_downstream_down_is_502(router_for):
    router = router_for({"grpc": f"http://127.0.0.1:{free_port()}"})

    response = post_json(router.url + "/cases", sample_case())
    ready = get(router.url + "/readyz")

    assert response.status == 502
    assert response.json()["error"] == "downstream_unreachable"
    assert ready.status == 503
    assert "grpc" in ready.json()["failures"]


def test_slow_downstream_is_504_quickly(router_for):
    slow = Flask("slow")

    @slow.post("/cases")
    def slow_cases():
        time.sleep(3)
        return {"record_id": "x", "created": True}, 201

    slow_server = AppServer(slow)
    router = router_for({"grpc": slow_server.url}, timeout_s=0.3)
    try:
        started = time.monotonic()
        response = post_json(router.url + "/cases", sample_case())
        elapsed = time.monotonic() - started
    finally:
        slow_server.stop()

    assert response.status == 504
    assert response.json()["error"] == "downstream_timeout"
    assert elapsed < 2.0


def test_bad_downstream_status_is_502(router_for):
    broken = Flask("broken")

    @broken.post("/cases")
    def broken_cases():
        return "oops", 500

    broken_server = AppServer(broken)
    router = router_for({"grpc": broken_server.url})
    try:
        response = post_json(router.url + "/cases", sample_case())
    finally:
        broken_server.stop()

    assert response.status == 502
    assert response.json()["error"] == "bad_gateway"


def test_no_subscriber_is_503(redis_server, redis_client, router_for):
    redis_pub = AppServer(
        create_redis_pub(RedisPubConfig("INFO", 0, redis_server.url, "pubsub"))
    )
    router = router_for({"redis": redis_pub.url})
    try:
        response = post_json(router.url + "/cases", sample_case())
        metrics_text = get(router.url + "/metrics").data.decode()
    finally:
        redis_pub.stop()

    assert response.status == 503
    assert response.json()["error"] == "no_subscriber"
    errors = metric_value(
        metrics_text, "covid_router_downstream_errors_total", path="redis"
    )
    assert errors >= 1


def test_gunicorn_serves_router_with_shared_metrics(tmp_path):
    """The gunicorn config, wsgi module and multiprocess metrics work together."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    process = ServiceProcess(
        gunicorn_command(names.ROUTER),
        {
            "HTTP_PORT": str(port),
            "GUNICORN_WORKERS": "2",
            "GUNICORN_THREADS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "ROUTE_WEIGHTS": "grpc=100",
            "GRPC_PATH_URL": f"http://127.0.0.1:{free_port()}",
        },
        tmp_path / "router.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: get(base + "/healthz").status == 200, "gunicorn router up")
        statuses = [post_json(base + "/cases", {}).status for _ in range(10)]
        metrics_text = get(base + "/metrics").data.decode()
    finally:
        code = process.stop()

    assert statuses == [422] * 10
    requests = metric_value(
        metrics_text, "covid_http_requests_total", service="router", status="422"
    )
    assert requests == 10
    assert code == 0, process.log()


def test_gunicorn_bad_weights_stop_start_up(tmp_path):
    process = ServiceProcess(
        gunicorn_command(names.ROUTER),
        {"HTTP_PORT": str(free_port()), "ROUTE_WEIGHTS": "grpc=fifty"},
        tmp_path / "router.log",
    )
    code = process.process.wait(timeout=30)

    assert code != 0
    assert "ROUTE_WEIGHTS" in process.log()
