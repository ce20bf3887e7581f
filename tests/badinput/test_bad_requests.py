"""Every kind of bad request: a 4xx JSON error naming the field, nothing stored.

Each request goes to a router that sends everything to the gRPC path and to one
that sends everything to the Redis path; both must give the same answer.
"""

from __future__ import annotations

import json
import time

import pytest
import redis
from covid_common import names

from tests.integration.support import HTTP, sample_case

JSON = {"Content-Type": "application/json"}


def body(**changes) -> bytes:
    case = sample_case(**changes)
    return json.dumps({k: v for k, v in case.items() if v is not ...}).encode()


def nested(depth: int) -> bytes:
    return b'{"name": ' + b"[" * depth + b"]" * depth + b"}"


# (id, body, headers, status, field named in "fields")
CASES = [
    ("not-json", b"{", JSON, 400, "body"),
    ("empty-body", b"", JSON, 400, "body"),
    ("array", b"[1, 2]", JSON, 400, "body"),
    ("string", b'"case"', JSON, 400, "body"),
    ("null", b"null", JSON, 400, "body"),
    ("nan", b'{"age": NaN}', JSON, 400, "body"),
    ("invalid-utf8", b'{"name": "\xff\xfe"}', JSON, 400, "body"),
    ("lone-surrogate", b'{"name": "\\ud800"}', JSON, 400, "body"),
    ("byte-order-mark", b"\xef\xbb\xbf" + body(), JSON, 400, "body"),
    ("nested-5000", nested(5000), JSON, 400, "body"),
    ("nested-1010", nested(1010), JSON, 400, "body"),
    ("nested-500", nested(500), JSON, 422, "name"),
    (
        "duplicate-key",
        b'{"name": "A", "location": "B", "age": 5, "age": 500, '
        b'"infected_type": "contact", "state": "mild"}',
        JSON,
        400,
        "age",
    ),
    ("no-content-type", body(), {}, 415, "Content-Type"),
    ("text-plain", body(), {"Content-Type": "text/plain"}, 415, "Content-Type"),
    (
        "form",
        b"name=x",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "Content-Type",
    ),
    ("too-large", body(name="x" * 17_000), JSON, 413, "body"),
    ("missing-age", body(age=...), JSON, 422, "age"),
    ("missing-all", b"{}", JSON, 422, "name"),
    ("extra-field", body(country="GT"), JSON, 422, "country"),
    ("router-field", body(path="grpc"), JSON, 422, "path"),
    ("received-at", body(received_at="2024-01-01T00:00:00Z"), JSON, 422, "received_at"),
    ("age-string", body(age="35"), JSON, 422, "age"),
    ("age-float", body(age=35.0), JSON, 422, "age"),
    ("age-bool", body(age=True), JSON, 422, "age"),
    ("age-null", body(age=None), JSON, 422, "age"),
    ("age-negative", body(age=-1), JSON, 422, "age"),
    ("age-too-high", body(age=131), JSON, 422, "age"),
    ("age-huge", b'{"age": 100000000000000000000000}', JSON, 422, "age"),
    ("name-number", body(name=5), JSON, 422, "name"),
    ("name-object", body(name={"first": "Ana"}), JSON, 422, "name"),
    ("name-empty", body(name=""), JSON, 422, "name"),
    ("name-blank", body(name=" \t "), JSON, 422, "name"),
    ("name-too-long", body(name="x" * 101), JSON, 422, "name"),
    ("name-nul", body(name="Ana\u0000Lopez"), JSON, 422, "name"),
    ("name-newline", body(name="Ana\nLopez"), JSON, 422, "name"),
    ("location-separator", body(location="A\u2028B"), JSON, 422, "location"),
    ("state-unknown", body(state="sleepy"), JSON, 422, "state"),
    ("state-number", body(state=3), JSON, 422, "state"),
    (
        "infected-type-unknown",
        body(infected_type="airborne"),
        JSON,
        422,
        "infected_type",
    ),
    ("record-id-space", body(record_id="a b"), JSON, 422, "record_id"),
    ("record-id-long", body(record_id="a" * 65), JSON, 422, "record_id"),
    ("record-id-number", body(record_id=7), JSON, 422, "record_id"),
    ("record-id-empty", body(record_id=""), JSON, 422, "record_id"),
]


def post(router, data: bytes, headers: dict) -> tuple[int, str, dict]:
    response = HTTP.request(
        "POST", router.url + names.CASES_ROUTE, body=data, headers=headers
    )
    return response.status, response.headers.get("Content-Type"), response.json()


@pytest.mark.parametrize(
    ("data", "headers", "status", "field"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_request_named_on_both_paths(routers, data, headers, status, field):
    answers = {path: post(routers[path], data, headers) for path in names.PATHS}

    grpc_status, content_type, error = answers[names.PATH_GRPC]
    assert grpc_status == status, error
    assert content_type == "application/json"
    assert error["error"] and error["message"], error
    assert field in error.get("fields", {}), error
    assert answers[names.PATH_REDIS] == answers[names.PATH_GRPC]


def test_chunked_oversized_body_is_413(routers):
    chunks = (b'{"name": "' + b"x" * 8192 for _ in range(4))

    response = HTTP.request(
        "POST",
        routers[names.PATH_GRPC].url + names.CASES_ROUTE,
        body=chunks,
        headers=JSON,
        chunked=True,
    )

    assert response.status == 413
    assert response.json()["fields"]["body"] == "must be at most 16384 bytes"


def test_charset_parameter_is_accepted(routers, cases):
    data = body(record_id="charset-ok")
    headers = {"Content-Type": "application/json; charset=utf-8"}

    status, _, answer = post(routers[names.PATH_GRPC], data, headers)

    assert status == 201, answer
    assert cases.count_documents({"record_id": "charset-ok"}) == 1


def test_bad_requests_store_nothing(routers, cases, redis_server):
    views = redis.Redis.from_url(redis_server.url)
    before = (cases.count_documents({}), views.get(names.RedisKeys.TOTAL))
    published = views.xlen(names.RedisKeys.STREAM)

    for _, data, headers, _, _ in CASES:
        for path in names.PATHS:
            post(routers[path], data, headers)
    # A record that slipped through would be stored within this time.
    time.sleep(1.0)

    assert cases.count_documents({}) == before[0]
    assert views.get(names.RedisKeys.TOTAL) == before[1]
    assert views.xlen(names.RedisKeys.STREAM) == published
    views.close()
