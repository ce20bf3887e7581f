"""Graceful shutdown: on SIGTERM each process finishes the work in hand, exits 0.

Work is held in flight by freezing a SecantusDB of the test's own with SIGSTOP,
so a store blocks until the test sends SIGCONT after the SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import orjson
import pymongo
import pytest
import urllib3
from covid_common import names
from covid_common.record import CaseInput, new_record, parse_record
from flask import Flask, request
from grpc_client.client import CaseIngestClient

from tests.integration.support import (
    HTTP,
    AppServer,
    ServiceProcess,
    post_json,
    sample_case,
    wait_ready,
)
from tests.support.servers import (
    ServerProcess,
    free_port,
    running,
    start_secantus,
    wait_until,
)

PAUSE_S = 2.0


@pytest.fixture(scope="module")
def own_mongo() -> ServerProcess:
    """A SecantusDB that only these tests freeze, so no other test stalls."""
    with running(start_secantus) as server:
        yield server


@pytest.fixture
def paused(own_mongo):
    """Return a function that freezes own_mongo; it is always resumed at the end."""
    frozen = []

    def pause() -> None:
        own_mongo.process.send_signal(signal.SIGSTOP)
        frozen.append(True)

    yield pause
    if frozen:
        own_mongo.process.send_signal(signal.SIGCONT)


def resume(server: ServerProcess) -> None:
    server.process.send_signal(signal.SIGCONT)


def routed(record_id: str, path: str) -> dict:
    case = CaseInput(
        name="Ana Lopez",
        location="Quetzaltenango",
        age=41,
        infected_type="imported",
        state="mild",
        record_id=record_id,
    )
    return new_record(case, path).to_dict()


def stored_count(server: ServerProcess, db_name: str, record_id: str) -> int:
    with pymongo.MongoClient(server.url) as client:
        cases = client[db_name][names.MONGO_CASES_COLLECTION]
        return cases.count_documents({"record_id": record_id})


def service_env(own_mongo, db_name, redis_server, http_port, **extra) -> dict:
    return {
        "HTTP_PORT": str(http_port),
        "MONGO_URL": own_mongo.url,
        "MONGO_DB": db_name,
        "REDIS_URL": redis_server.url,
        **extra,
    }


@pytest.mark.parametrize("mode", ["pubsub", "streams"])
def test_redis_sub_finishes_message_in_hand(
    mode, own_mongo, paused, redis_server, redis_client, tmp_path
):
    db_name = f"shutdown_{mode}"
    http_port = free_port()
    process = ServiceProcess.module(
        "redis_sub",
        service_env(own_mongo, db_name, redis_server, http_port, REDIS_MODE=mode),
        tmp_path / "redis-sub.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{http_port}", f"redis-sub in {mode} mode")
        payload = orjson.dumps(routed(f"held-{mode}", names.PATH_REDIS))
        paused()
        if mode == "streams":
            redis_client.xadd(names.RedisKeys.STREAM, {"record": payload})
            wait_until(
                lambda: (
                    redis_client.xpending(
                        names.RedisKeys.STREAM, names.RedisKeys.STREAM_GROUP
                    )["pending"]
                    == 1
                ),
                "the consumer read the entry",
            )
        else:
            assert redis_client.publish(names.RedisKeys.CHANNEL, payload) == 1
        time.sleep(0.3)
        process.process.send_signal(signal.SIGTERM)
        time.sleep(PAUSE_S)
        still_running = process.process.poll() is None
        resume(own_mongo)
        code = process.process.wait(timeout=30)
    finally:
        process.stop()

    assert still_running, "redis-sub exited before its store finished"
    assert code == 0, process.log()
    assert stored_count(own_mongo, db_name, f"held-{mode}") == 1
    if mode == "streams":
        pending = redis_client.xpending(
            names.RedisKeys.STREAM, names.RedisKeys.STREAM_GROUP
        )
        assert pending["pending"] == 0


def test_grpc_server_finishes_call_in_flight(
    own_mongo, paused, redis_server, redis_client, tmp_path
):
    db_name = "shutdown_grpc"
    http_port, grpc_port = free_port(), free_port()
    process = ServiceProcess.module(
        "grpc_server",
        service_env(
            own_mongo, db_name, redis_server, http_port, GRPC_PORT=str(grpc_port)
        ),
        tmp_path / "grpc-server.log",
    )
    client = CaseIngestClient(f"127.0.0.1:{grpc_port}", deadline_s=20.0)
    results: list[object] = []
    try:
        wait_ready(f"http://127.0.0.1:{http_port}", "grpc-server ready")
        record = parse_record(routed("held-grpc", names.PATH_GRPC))
        paused()
        call = threading.Thread(target=lambda: results.append(client.store(record)))
        call.start()
        time.sleep(0.5)
        process.process.send_signal(signal.SIGTERM)
        time.sleep(PAUSE_S)
        still_running = process.process.poll() is None
        resume(own_mongo)
        call.join(timeout=20)
        code = process.process.wait(timeout=30)
    finally:
        process.stop()

    assert still_running, "grpc-server exited before its call finished"
    assert results == [True]
    assert code == 0, process.log()
    assert stored_count(own_mongo, db_name, "held-grpc") == 1


def slow_path_service(delay_s: float) -> AppServer:
    """A path service that answers like grpc-client, after `delay_s` seconds."""
    app = Flask("slow_path")

    @app.post(names.CASES_ROUTE)
    def cases():
        time.sleep(delay_s)
        record_id = request.get_json()["record_id"]
        return {"record_id": record_id, "created": True}, 201

    return AppServer(app)


def test_gunicorn_finishes_request_in_flight(tmp_path):
    downstream = slow_path_service(delay_s=PAUSE_S)
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    process = ServiceProcess(
        [gunicorn, *names.ROUTER.command[1:]],
        {
            "HTTP_PORT": str(port),
            "GRPC_PATH_URL": downstream.url,
            "REDIS_PATH_URL": downstream.url,
            "ROUTE_WEIGHTS": "grpc=100,redis=0",
            "GUNICORN_WORKERS": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        },
        tmp_path / "router.log",
    )
    responses: list[urllib3.BaseHTTPResponse] = []
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: HTTP.request("GET", url + "/healthz").status == 200, "router"
        )
        call = threading.Thread(
            target=lambda: responses.append(post_json(url + "/cases", sample_case()))
        )
        call.start()
        time.sleep(0.5)
        process.process.send_signal(signal.SIGTERM)
        call.join(timeout=20)
        code = process.process.wait(timeout=30)
    finally:
        process.stop()
        downstream.stop()

    assert [r.status for r in responses] == [201], process.log()
    assert code == 0, process.log()
