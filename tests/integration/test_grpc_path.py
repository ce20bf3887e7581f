"""gRPC path on real Redis and SecantusDB: grpc-client, grpc-server, storage."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pymongo
import pytest
from covid.v1 import ingest_pb2, ingest_pb2_grpc
from covid_common import metrics, names
from covid_common.config import GrpcClientConfig, GrpcServerConfig, StorageConfig
from covid_common.record import CaseInput, CaseRecord, new_record, parse_record
from covid_common.storage import Storage
from grpc_client.app import create_app
from grpc_client.client import to_proto
from grpc_server.server import start
from grpc_server.servicer import CaseIngestServicer

from tests.integration.support import (
    AppServer,
    ServiceProcess,
    get,
    metric_value,
    post_json,
    wait_ready,
)
from tests.support.servers import free_port, wait_until


def routed(index: int, **changes) -> dict:
    case = CaseInput(
        name=f"Ana Lopez {index}",
        location="Quetzaltenango",
        age=41,
        infected_type="imported",
        state="mild",
        record_id=f"grpc-{index}",
    )
    record = new_record(case, names.PATH_GRPC).to_dict()
    record.update(changes)
    return record


def server_config(mongo_server, mongo_db_name, redis_server, grpc_port=0):
    return GrpcServerConfig(
        log_level="INFO",
        http_port=free_port(),
        grpc_port=grpc_port or free_port(),
        storage=StorageConfig(mongo_server.url, mongo_db_name, redis_server.url),
        max_workers=4,
    )


@pytest.fixture
def grpc_server(mongo_server, mongo_db_name, redis_server, redis_client):
    running = start(
        server_config(mongo_server, mongo_db_name, redis_server), host="127.0.0.1"
    )
    wait_until(
        lambda: get(f"http://127.0.0.1:{running.probes.port}/readyz").status == 200,
        "grpc-server storage ready",
    )
    yield running
    running.stop(grace_s=1)


def client_app(grpc_port: int, deadline_s: float = 3.0) -> AppServer:
    config = GrpcClientConfig(
        log_level="INFO",
        http_port=0,
        grpc_server_addr=f"127.0.0.1:{grpc_port}",
        grpc_deadline_s=deadline_s,
    )
    return AppServer(create_app(config))


def count_documents(mongo_server, db_name: str) -> int:
    with pymongo.MongoClient(mongo_server.url) as client:
        return client[db_name][names.MONGO_CASES_COLLECTION].count_documents({})


def test_store_then_duplicate(grpc_server, redis_client, mongo_server, mongo_db_name):
    app = client_app(grpc_server.grpc_port)
    try:
        first = post_json(app.url + "/cases", routed(1))
        second = post_json(app.url + "/cases", routed(1))
    finally:
        app.stop()

    assert first.status == 201
    assert first.json() == {"record_id": "grpc-1", "created": True}
    assert second.status == 200
    assert second.json()["duplicate"] is True
    assert count_documents(mongo_server, mongo_db_name) == 1
    assert redis_client.get(names.RedisKeys.TOTAL) == "1"
    assert redis_client.hget(names.RedisKeys.BY_PATH, "grpc") == "1"


def test_invalid_record_is_422(grpc_server):
    app = client_app(grpc_server.grpc_port)
    try:
        response = post_json(app.url + "/cases", routed(2, age=-1, path="ftp"))
    finally:
        app.stop()

    assert response.status == 422
    assert response.json()["fields"] == {
        "age": "must be between 0 and 130",
        "path": "must be one of: grpc, redis",
    }


def test_server_rejects_malformed_proto(grpc_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_server.grpc_port}")
    stub = ingest_pb2_grpc.CaseIngestStub(channel)
    request = ingest_pb2.StoreCaseRequest(record=ingest_pb2.CaseRecord(record_id="x"))

    with pytest.raises(grpc.RpcError) as failure:
        stub.StoreCase(request, timeout=5)
    channel.close()

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name: must not be empty" in failure.value.details()


def test_batch_reports_each_record(grpc_server, redis_client):
    app = client_app(grpc_server.grpc_port)
    try:
        post_json(app.url + "/cases", routed(10))
        response = post_json(
            app.url + "/cases/batch",
            {"records": [routed(10), routed(11), routed(12)]},
        )
    finally:
        app.stop()

    assert response.status == 200
    body = response.json()
    assert (body["created"], body["duplicate"], body["invalid"]) == (2, 1, 0)
    assert [r["status"] for r in body["results"]] == ["duplicate", "created", "created"]
    assert redis_client.get(names.RedisKeys.TOTAL) == "3"


def test_stream_call_marks_invalid_records(grpc_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_server.grpc_port}")
    stub = ingest_pb2_grpc.CaseIngestStub(channel)
    good = ingest_pb2.StoreCaseRequest(record=to_proto(_record(20)))
    bad = ingest_pb2.StoreCaseRequest(record=ingest_pb2.CaseRecord(record_id="bad-1"))

    response = stub.StoreCases(iter([good, bad]), timeout=5)
    channel.close()

    Status = ingest_pb2.StoreCaseResult.Status
    assert (response.created, response.duplicate, response.invalid) == (1, 0, 1)
    assert response.results[0].status == Status.STATUS_CREATED
    assert response.results[1].status == Status.STATUS_INVALID
    assert response.results[1].record_id == "bad-1"


def test_server_down_gives_503_within_deadline():
    app = client_app(free_port(), deadline_s=0.5)
    started = time.monotonic()
    try:
        response = post_json(app.url + "/cases", routed(3))
        ready = get(app.url + "/readyz")
    finally:
        app.stop()
    elapsed = time.monotonic() - started

    assert response.status == 503
    assert response.json()["error"] in ("grpc_unavailable", "grpc_deadline_exceeded")
    assert elapsed < 3.5  # the 0.5 s deadline plus the 1 s readiness probe
    assert ready.status == 503


def test_client_retries_until_server_starts(
    mongo_server, mongo_db_name, redis_server, redis_client
):
    grpc_port = free_port()
    app = client_app(grpc_port, deadline_s=8.0)
    config = server_config(mongo_server, mongo_db_name, redis_server, grpc_port)
    holder = {}
    # Start the server after the client's first attempts have failed.
    timer = threading.Timer(
        0.7, lambda: holder.setdefault("server", start(config, host="127.0.0.1"))
    )
    timer.start()
    try:
        response = post_json(app.url + "/cases", routed(4), timeout_s=15)
    finally:
        timer.join()
        app.stop()
        holder["server"].stop(grace_s=1)

    assert response.status == 201
    assert redis_client.get(names.RedisKeys.TOTAL) == "1"


def test_storage_failure_is_unavailable(redis_server):
    # Nothing listens on port 1, so every Mongo write fails.
    storage = Storage.from_urls(
        "mongodb://127.0.0.1:1/?retryWrites=false&serverSelectionTimeoutMS=300",
        "covid_down",
        redis_server.url,
    )
    server = grpc.server(_executor())
    ingest_pb2_grpc.add_CaseIngestServicer_to_server(
        CaseIngestServicer(storage), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = ingest_pb2_grpc.CaseIngestStub(channel)
    before = metrics.GRPC_SERVER_REQUESTS.labels(
        "StoreCase", "UNAVAILABLE"
    )._value.get()

    with pytest.raises(grpc.RpcError) as failure:
        stub.StoreCase(
            ingest_pb2.StoreCaseRequest(record=to_proto(_record(5))), timeout=5
        )
    channel.close()
    server.stop(0)

    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    after = metrics.GRPC_SERVER_REQUESTS.labels("StoreCase", "UNAVAILABLE")._value.get()
    assert after == before + 1


def test_health_and_metrics_routes(grpc_server):
    base = f"http://127.0.0.1:{grpc_server.probes.port}"

    health = get(base + "/healthz")
    metrics_text = get(base + "/metrics").data.decode()

    assert health.status == 200
    assert "covid_grpc_server_requests_total" in metrics_text
    assert metric_value(metrics_text, "covid_records_stored_total") >= 0


def test_sigterm_exits_zero(mongo_server, mongo_db_name, redis_server, tmp_path):
    http_port, grpc_port = free_port(), free_port()
    process = ServiceProcess.module(
        "grpc_server",
        {
            "HTTP_PORT": str(http_port),
            "GRPC_PORT": str(grpc_port),
            "MONGO_URL": mongo_server.url,
            "MONGO_DB": mongo_db_name,
            "REDIS_URL": redis_server.url,
        },
        tmp_path / "grpc-server.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{http_port}", "grpc-server subprocess ready")
        process.process.send_signal(signal.SIGTERM)
        code = process.process.wait(timeout=20)
    finally:
        process.stop()

    assert code == 0, process.log()
    assert "received SIGTERM" in process.log()


def test_missing_variable_stops_start_up(tmp_path):
    process = ServiceProcess.module(
        "grpc_server", {"MONGO_URL": "", "REDIS_URL": ""}, tmp_path / "bad.log"
    )
    code = process.process.wait(timeout=20)

    assert code == 2
    assert "MONGO_URL" in process.log()


def _record(index: int) -> CaseRecord:
    return parse_record(routed(index))


def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2)
