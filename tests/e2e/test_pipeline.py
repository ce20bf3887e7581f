"""A known set of records through nginx ends up exactly once in MongoDB and Redis.

The stack is the real one: nginx, the router, both paths, SecantusDB and
redis-server, each in its own process under supervisord.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime

import pymongo
import pytest
import redis
import urllib3
from covid_common import names
from covid_common.record import age_range

from load.records import random_record
from local.stack import LocalStack
from tests.e2e.conftest import eventually

RECORD_COUNT = 200
# Records with an even index carry their own record_id; the router assigns the rest.
CLIENT_ID_PREFIX = "e2e-"
LATEST_CAP = 100


def _known_records() -> list[dict]:
    rng = random.Random(20200313)
    records = []
    for index in range(RECORD_COUNT):
        record = random_record(rng)
        if index % 2 == 0:
            record["record_id"] = f"{CLIENT_ID_PREFIX}{index:04d}"
        records.append(record)
    return records


@pytest.fixture(scope="module")
def sent(local_stack: LocalStack) -> list[tuple[dict, dict]]:
    """Post the known records through nginx; return (record, response body) pairs."""
    http = urllib3.PoolManager()
    pairs = []
    for record in _known_records():
        response = http.request(
            "POST",
            local_stack.config.ingress_url + names.CASES_ROUTE,
            body=json.dumps(record).encode(),
            headers={"Content-Type": "application/json"},
            timeout=urllib3.Timeout(total=15),
            retries=False,
        )
        assert response.status == 201, (
            f"record {record} got HTTP {response.status}: {response.data!r}"
        )
        pairs.append((record, json.loads(response.data)))
    return pairs


@pytest.fixture(scope="module")
def mongo_cases(local_stack: LocalStack):
    config = local_stack.config
    client = pymongo.MongoClient(config.mongo_url)
    yield client[config.mongo_db][names.MONGO_CASES_COLLECTION]
    client.close()


@pytest.fixture(scope="module")
def redis_client(local_stack: LocalStack):
    client = redis.Redis.from_url(local_stack.config.redis_url, decode_responses=True)
    yield client
    client.close()


def test_responses_carry_id_path_and_time(sent):
    for record, answer in sent:
        assert answer["path"] in names.PATHS, answer
        if "record_id" in record:
            assert answer["record_id"] == record["record_id"]
        else:
            assert answer["record_id"], answer
        assert answer["received_at"].endswith("Z"), answer
        assert "duplicate" not in answer or answer["duplicate"] is False, answer


def test_both_paths_get_records(sent):
    paths = Counter(answer["path"] for _, answer in sent)
    assert paths[names.PATH_GRPC] > 0, paths
    assert paths[names.PATH_REDIS] > 0, paths


def test_mongo_holds_exactly_the_records(sent, mongo_cases):
    expected = {answer["record_id"]: (record, answer) for record, answer in sent}

    def check() -> None:
        documents = list(mongo_cases.find({}, {"_id": 0}))
        ids = [document["record_id"] for document in documents]
        assert len(ids) == len(set(ids)), "a record_id appears twice"
        missing = set(expected) - set(ids)
        extra = set(ids) - set(expected)
        assert not missing, (
            f"{len(missing)} records missing, e.g. {sorted(missing)[:3]}"
        )
        assert not extra, f"{len(extra)} unexpected records, e.g. {sorted(extra)[:3]}"

    eventually(check, f"MongoDB to hold exactly the {RECORD_COUNT} records sent")

    for document in mongo_cases.find({}, {"_id": 0}):
        record, answer = expected[document["record_id"]]
        for field in ("name", "location", "age", "infected_type", "state"):
            assert document[field] == record[field], (field, document, record)
        assert document["path"] == answer["path"]
        received_at = datetime.fromisoformat(answer["received_at"])
        stored_received = document["received_at"].replace(tzinfo=UTC)
        assert stored_received == received_at, document
        assert document["stored_at"].replace(tzinfo=UTC) >= received_at, document


def test_mongo_record_id_index_is_unique(sent, mongo_cases):
    indexes = mongo_cases.index_information().values()
    unique_keys = [index["key"] for index in indexes if index.get("unique")]
    assert [("record_id", 1)] in unique_keys, list(indexes)


def test_redis_views_count_each_record_once(sent, redis_client):
    records = [record for record, _ in sent]
    expected_hashes = {
        names.RedisKeys.BY_PATH: Counter(answer["path"] for _, answer in sent),
        names.RedisKeys.BY_LOCATION: Counter(r["location"] for r in records),
        names.RedisKeys.BY_STATE: Counter(r["state"] for r in records),
        names.RedisKeys.BY_INFECTED_TYPE: Counter(r["infected_type"] for r in records),
        names.RedisKeys.BY_AGE_RANGE: Counter(age_range(r["age"]) for r in records),
    }

    def check() -> None:
        assert redis_client.get(names.RedisKeys.TOTAL) == str(RECORD_COUNT)
        assert redis_client.scard(names.RedisKeys.COUNTED_IDS) == RECORD_COUNT

    eventually(check, f"the Redis total to reach {RECORD_COUNT}")

    for key, expected in expected_hashes.items():
        stored = {
            field: int(count) for field, count in redis_client.hgetall(key).items()
        }
        assert stored == dict(expected), key


def test_redis_latest_lists_newest_records(sent, redis_client):
    eventually(
        lambda: _assert_equal(
            redis_client.get(names.RedisKeys.TOTAL), str(RECORD_COUNT)
        ),
        f"the Redis total to reach {RECORD_COUNT}",
    )
    latest = [
        json.loads(entry)
        for entry in redis_client.lrange(names.RedisKeys.LATEST, 0, -1)
    ]
    by_id = {answer["record_id"]: (record, answer) for record, answer in sent}
    latest_ids = [entry["record_id"] for entry in latest]

    assert len(latest) == LATEST_CAP
    assert len(set(latest_ids)) == LATEST_CAP, "LATEST repeats a record"
    for entry in latest:
        record, answer = by_id[entry["record_id"]]
        for field in ("name", "location", "age", "infected_type", "state"):
            assert entry[field] == record[field], (field, entry, record)
        assert entry["path"] == answer["path"]

    # The Redis path stores a record after the router has responded, so it may be
    # stored a moment after the next one. The margin allows such neighbours to swap.
    sent_ids = [answer["record_id"] for _, answer in sent]
    assert set(sent_ids[-(LATEST_CAP - 10) :]) <= set(latest_ids)
    assert latest_ids[0] in sent_ids[-10:], (
        "the newest entry is not among the last sent"
    )


def _assert_equal(actual: object, expected: object) -> None:
    assert actual == expected, f"{actual!r} != {expected!r}"


def test_live_page_served_under_prefix(local_stack: LocalStack, sent):
    if local_stack.config.service(names.LIVE.name) is None:
        pytest.skip("the live service is not installed")
    http = urllib3.PoolManager()
    base = local_stack.config.ingress_url + "/live/"

    page = http.request("GET", base, timeout=10)
    assert page.status == 200
    assert b'<base href="/live/">' in page.data

    def check() -> None:
        response = http.request("GET", base + "api/summary", timeout=10)
        assert response.status == 200, response.data
        assert json.loads(response.data)["total"] == RECORD_COUNT

    eventually(check, f"the live page's summary to count {RECORD_COUNT} records")
