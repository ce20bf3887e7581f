"""Batches: the router's POST /cases/batch and the Redis path's batch handling.

Everything runs against real Redis and SecantusDB, through real path services.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import orjson
import pymongo
import pytest
from covid_common import names
from covid_common.config import RedisPubConfig
from covid_common.record import CaseInput, new_record
from flask import Flask, request
from redis_pub.app import create_app as create_redis_pub
from router.openapi import build_spec

from tests.integration import test_router
from tests.integration.support import (
    HTTP,
    AppServer,
    ServiceProcess,
    post_json,
    sample_case,
    wait_ready,
)
from tests.support.servers import free_port, wait_until

# The router tests' fixtures: both paths running, and routers built on them.
pipeline = test_router.pipeline
router_for = test_router.router_for


def stored_documents(mongo_server, db_name: str) -> dict[str, dict]:
    with pymongo.MongoClient(mongo_server.url) as client:
        cursor = client[db_name][names.MONGO_CASES_COLLECTION].find({})
        return {document["record_id"]: document for document in cursor}


def schema_validator(spec: dict, name: str) -> jsonschema.Draft202012Validator:
    """Return a validator for one schema of an OpenAPI document's components."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return jsonschema.Draft202012Validator(schema)


def recording_path(received: list[list[str]]) -> Flask:
    """A path service that creates every record and keeps each request's ids."""
    app = Flask("recording-path")

    @app.post("/cases")
    def one_case():
        record_id = request.get_json()["record_id"]
        received.append([record_id])
        return {"record_id": record_id, "created": True}, 201

    @app.post("/cases/batch")
    def many_cases():
        records = request.get_json()["records"]
        received.append([r["record_id"] for r in records])
        return {
            "created": len(records),
            "duplicate": 0,
            "invalid": 0,
            "results": [
                {"record_id": r["record_id"], "status": "created"} for r in records
            ],
        }

    return app


def routed(index: int) -> dict:
    case = CaseInput(
        name=f"Ana Lopez {index}",
        location="Quetzaltenango",
        age=41,
        infected_type="imported",
        state="mild",
        record_id=f"batch-{index}",
    )
    return new_record(case, names.PATH_REDIS).to_dict()


def test_batch_answers_each_item(
    pipeline, router_for, redis_client, mongo_server, mongo_db_name
):
    router = router_for(pipeline)
    cases = [sample_case(record_id=f"item-{i}") for i in range(40)]
    cases[3] = sample_case(age=-1)
    cases[17] = sample_case(state="sleepy", extra=1)

    response = post_json(router.url + "/cases/batch", cases)

    assert response.status == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (38, 2, 0)
    results = body["results"]
    assert len(results) == 40
    assert results[3]["status"] == 422
    assert results[3]["fields"] == {"age": "must be between 0 and 130"}
    assert set(results[17]["fields"]) == {"state", "extra"}
    accepted = [r for i, r in enumerate(results) if i not in (3, 17)]
    assert {r["status"] for r in accepted} == {201}
    assert [r["record_id"] for r in accepted] == [
        f"item-{i}" for i in range(40) if i not in (3, 17)
    ]
    assert {r["path"] for r in accepted} == {"grpc", "redis"}
    wait_until(
        lambda: redis_client.get(names.RedisKeys.TOTAL) == "38", "38 records counted"
    )
    documents = stored_documents(mongo_server, mongo_db_name)
    assert set(documents) == {r["record_id"] for r in accepted}
    for result in accepted:
        assert documents[result["record_id"]]["path"] == result["path"]


def test_batch_object_form_reports_duplicates(pipeline, router_for, redis_client):
    router = router_for(pipeline, weights={"grpc": 100, "redis": 0})
    batch = {"records": [sample_case(record_id=f"dup-{i}") for i in range(5)]}

    first = post_json(router.url + "/cases/batch", batch)
    second = post_json(router.url + "/cases/batch", batch)

    assert first.status == 200
    assert [r["status"] for r in first.json()["results"]] == [201] * 5
    assert second.status == 200
    assert [r["status"] for r in second.json()["results"]] == [200] * 5
    assert all(r["duplicate"] for r in second.json()["results"])
    assert redis_client.get(names.RedisKeys.TOTAL) == "5"


@pytest.mark.parametrize("path", names.PATHS)
def test_repeated_record_id_stored_once(
    path, pipeline, router_for, redis_client, mongo_server, mongo_db_name
):
    other = next(p for p in names.PATHS if p != path)
    router = router_for(pipeline, weights={path: 100, other: 0})
    cases = [
        sample_case(record_id="twice", name="First Copy"),
        sample_case(record_id="once"),
        sample_case(record_id="twice", name="Second Copy"),
        sample_case(record_id="twice", age=-1),
        sample_case(record_id="twice", name="Third Copy", age=70),
    ]

    response = post_json(router.url + "/cases/batch", cases)

    assert response.status == 200
    body = response.json()
    results = body["results"]
    assert [r["status"] for r in results] == [201, 201, 200, 422, 200]
    assert (body["accepted"], body["rejected"], body["failed"]) == (4, 1, 0)
    assert "duplicate" not in results[0]
    for later in (results[2], results[4]):
        assert later["duplicate"] is True
        assert later["record_id"] == "twice"
        assert later["path"] == path
        assert later["received_at"] == results[0]["received_at"]
    assert results[3]["fields"] == {"age": "must be between 0 and 130"}
    wait_until(
        lambda: redis_client.get(names.RedisKeys.TOTAL) == "2", "2 records counted"
    )
    documents = stored_documents(mongo_server, mongo_db_name)
    assert set(documents) == {"twice", "once"}
    assert documents["twice"]["name"] == "First Copy"
    assert documents["twice"]["age"] == 35
    assert redis_client.hget(names.RedisKeys.BY_AGE_RANGE, "70-79") is None


def test_repeated_record_id_sent_once(router_for):
    received: list[list[str]] = []
    path_server = AppServer(recording_path(received))
    router = router_for({names.PATH_GRPC: path_server.url})
    try:
        cases = [sample_case(record_id=f"r-{i % 3}") for i in range(9)]
        response = post_json(router.url + "/cases/batch", cases)
    finally:
        path_server.stop()

    assert response.status == 200
    assert [r["status"] for r in response.json()["results"]] == [201] * 3 + [200] * 6
    assert received == [["r-0", "r-1", "r-2"]]


def test_repeated_record_id_shares_failure(router_for):
    router = router_for({names.PATH_GRPC: f"http://127.0.0.1:{free_port()}"})
    cases = [sample_case(record_id="lost"), sample_case(record_id="lost")]

    response = post_json(router.url + "/cases/batch", cases)

    assert response.status == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (0, 0, 2)
    first, later = body["results"]
    assert first["status"] == 502
    assert later == first
    schema_validator(build_spec(1024), "BatchReply").validate(body)


def test_single_case_points_to_cases_route(router_for):
    router = router_for({"grpc": f"http://127.0.0.1:{free_port()}"})

    response = post_json(router.url + "/cases/batch", sample_case())

    assert response.status == 400
    error = response.json()
    assert error["error"] == "invalid_json"
    assert "POST /cases" in error["message"]
    assert '{"records": [...]}' in error["message"]
    assert set(error["fields"]) == {"body"}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ([], 422, "records"),
        ([sample_case()] * 501, 413, "records"),
        ({"records": "many"}, 400, "records"),
        ({"records": [sample_case()], "mode": "fast"}, 400, "mode"),
        (sample_case(), 400, "body"),
        ({}, 400, "body"),
        (5, 400, "records"),
    ],
)
def test_bad_batches_get_json_errors(router_for, body, status, field):
    # No path service runs: a bad batch is rejected before any forward.
    router = router_for({"grpc": f"http://127.0.0.1:{free_port()}"})

    response = post_json(router.url + "/cases/batch", body)

    assert response.status == status
    assert response.headers["Content-Type"] == "application/json"
    assert field in response.json()["fields"]


def test_batch_body_over_limit_is_413(router_for):
    router = router_for({"grpc": f"http://127.0.0.1:{free_port()}"})
    body = orjson.dumps([sample_case(name="x" * 90)] * 400).replace(b"}", b"} " * 8)
    body += b" " * (600 * 1024 - len(body))

    response = HTTP.request(
        "POST",
        router.url + "/cases/batch",
        body=body,
        headers={"Content-Type": "application/json"},
    )

    assert response.status == 413
    assert response.json()["error"] == "payload_too_large"


def test_unreachable_path_fails_items_only(router_for):
    router = router_for({"grpc": f"http://127.0.0.1:{free_port()}"})

    response = post_json(
        router.url + "/cases/batch", [sample_case(), sample_case(age="old")]
    )

    assert response.status == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (0, 1, 1)
    failed = body["results"][0]
    assert failed["status"] == 502
    assert failed["error"] == "downstream_unreachable"
    assert failed["path"] == "grpc"
    assert body["results"][1]["status"] == 422
    schema_validator(build_spec(1024), "BatchReply").validate(body)


def test_redis_pub_batch_is_one_message(redis_server, redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(names.RedisKeys.CHANNEL)
    app = AppServer(
        create_redis_pub(RedisPubConfig("INFO", 0, redis_server.url, "pubsub"))
    )
    try:
        records = [routed(i) for i in range(3)]
        response = post_json(app.url + "/cases/batch", {"records": records})
        # The first reads return None while they consume the subscribe reply.
        message = None
        for _ in range(5):
            message = message or pubsub.get_message(timeout=1)
    finally:
        app.stop()
        pubsub.close()

    assert response.status == 201
    assert response.json() == {
        "published": 3,
        "record_ids": ["batch-0", "batch-1", "batch-2"],
    }
    assert [item["record_id"] for item in orjson.loads(message["data"])] == [
        "batch-0",
        "batch-1",
        "batch-2",
    ]


def test_redis_pub_rejects_invalid_batch_record(redis_server):
    app = AppServer(
        create_redis_pub(RedisPubConfig("INFO", 0, redis_server.url, "pubsub"))
    )
    try:
        bad = dict(routed(1), age=500)
        response = post_json(app.url + "/cases/batch", {"records": [routed(0), bad]})
    finally:
        app.stop()

    assert response.status == 422
    assert response.json()["fields"] == {"records[1].age": "must be between 0 and 130"}


def test_redis_pub_streams_batch_adds_entries(redis_server, redis_client):
    app = AppServer(
        create_redis_pub(RedisPubConfig("INFO", 0, redis_server.url, "streams"))
    )
    try:
        records = [routed(i) for i in range(4)]
        response = post_json(app.url + "/cases/batch", {"records": records})
    finally:
        app.stop()

    assert response.status == 201
    assert redis_client.xlen(names.RedisKeys.STREAM) == 4


def test_subscriber_stores_batch_message(
    redis_server, redis_client, mongo_server, mongo_db_name, tmp_path
):
    http_port = free_port()
    process = ServiceProcess.module(
        "redis_sub",
        {
            "HTTP_PORT": str(http_port),
            "MONGO_URL": mongo_server.url,
            "MONGO_DB": mongo_db_name,
            "REDIS_URL": redis_server.url,
        },
        tmp_path / "redis-sub.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{http_port}", "redis-sub subscribed")
        invalid = dict(routed(99), state="sleepy")
        batch = [routed(i) for i in range(10)] + [invalid]
        redis_client.publish(names.RedisKeys.CHANNEL, orjson.dumps(batch))
        # Single-record messages sent at once are stored together with it.
        for index in range(10, 15):
            redis_client.publish(names.RedisKeys.CHANNEL, orjson.dumps(routed(index)))
        wait_until(
            lambda: redis_client.get(names.RedisKeys.TOTAL) == "15",
            "15 records counted",
        )
    finally:
        code = process.stop()

    assert code == 0, process.log()
    assert set(stored_documents(mongo_server, mongo_db_name)) == {
        f"batch-{i}" for i in range(15)
    }
    assert "dropped invalid record 10 of a batch message" in process.log()


def test_concurrent_cases_travel_in_batches(router_for):
    """Records that wait for the same path while a forward is in flight go together."""
    received: list[int] = []
    slow = Flask("slow-path")

    @slow.post("/cases")
    def one_case():
        received.append(1)
        time.sleep(0.2)
        body = request.get_json()
        return {"record_id": body["record_id"], "created": True}, 201

    @slow.post("/cases/batch")
    def many_cases():
        records = request.get_json()["records"]
        received.append(len(records))
        time.sleep(0.2)
        return {
            "created": len(records),
            "duplicate": 0,
            "invalid": 0,
            "results": [
                {"record_id": r["record_id"], "status": "created"} for r in records
            ],
        }

    path_server = AppServer(slow)
    router = router_for({"grpc": path_server.url})
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(
                pool.map(
                    lambda i: post_json(
                        router.url + "/cases", sample_case(record_id=f"c-{i}")
                    ),
                    range(20),
                )
            )
    finally:
        path_server.stop()

    assert [r.status for r in responses] == [201] * 20
    assert sorted(r.json()["record_id"] for r in responses) == sorted(
        f"c-{i}" for i in range(20)
    )
    assert sum(received) == 20
    # One sender per path: at most the first record goes alone, and the rest
    # queue behind it.
    assert len(received) < 20
    assert max(received) > 1
