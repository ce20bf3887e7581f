"""Storage against real Redis and SecantusDB: each record stored and counted once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson
import pymongo
import pytest
import redis
from covid_common import names
from covid_common.record import CaseInput, CaseRecord, new_record
from covid_common.storage import LATEST_MAX, Storage, StorageError

from tests.support.servers import ServerProcess

Keys = names.RedisKeys


def make_record(index: int = 0, path: str = names.PATH_GRPC, **changes) -> CaseRecord:
    case = CaseInput(
        name=f"Pablo Mendoza {index}",
        location="Guatemala City",
        age=35,
        infected_type="communitary",
        state="asymptomatic",
        record_id=f"rec-{index}",
    )
    return dataclasses.replace(new_record(case, path), **changes)


def cases(mongo_server: ServerProcess, db_name: str) -> pymongo.collection.Collection:
    client = pymongo.MongoClient(mongo_server.url, tz_aware=True)
    return client[db_name][names.MONGO_CASES_COLLECTION]


def test_store_writes_document_and_views(
    storage, redis_client, mongo_server, mongo_db_name
):
    record = make_record(1, age=93)

    created = storage.store(record, names.PATH_GRPC)

    assert created is True
    document = cases(mongo_server, mongo_db_name).find_one({"record_id": "rec-1"})
    assert document["name"] == "Pablo Mendoza 1"
    assert document["path"] == "grpc"
    assert isinstance(document["received_at"], datetime)
    assert document["received_at"] == record.received_datetime.replace(
        microsecond=record.received_datetime.microsecond // 1000 * 1000
    )
    assert document["stored_at"] >= document["received_at"]
    assert redis_client.get(Keys.TOTAL) == "1"
    assert redis_client.hgetall(Keys.BY_PATH) == {"grpc": "1"}
    assert redis_client.hgetall(Keys.BY_LOCATION) == {"Guatemala City": "1"}
    assert redis_client.hgetall(Keys.BY_STATE) == {"asymptomatic": "1"}
    assert redis_client.hgetall(Keys.BY_INFECTED_TYPE) == {"communitary": "1"}
    assert redis_client.hgetall(Keys.BY_AGE_RANGE) == {"90+": "1"}
    latest = orjson.loads(redis_client.lindex(Keys.LATEST, 0))
    assert latest["record_id"] == "rec-1"
    assert latest["path"] == "grpc"
    assert "stored_at" in latest


def test_store_twice_counts_once(storage, redis_client, mongo_server, mongo_db_name):
    record = make_record(2)

    first = storage.store(record, names.PATH_REDIS)
    second = storage.store(record, names.PATH_REDIS)

    assert first is True
    assert second is False
    assert cases(mongo_server, mongo_db_name).count_documents({}) == 1
    assert redis_client.get(Keys.TOTAL) == "1"
    assert redis_client.llen(Keys.LATEST) == 1


def test_retry_after_redis_failure_counts_once(
    storage, redis_client, mongo_server, mongo_db_name, monkeypatch
):
    record = make_record(3)
    # Fail the Redis step once, after the Mongo insert succeeded, the way a
    # connection drop between the two writes would.
    real_script = storage._count_script

    def failing_script(*args, **kwargs):
        raise redis.ConnectionError("connection dropped")

    monkeypatch.setattr(storage, "_count_script", failing_script)
    with pytest.raises(StorageError) as failure:
        storage.store(record, names.PATH_GRPC)
    assert failure.value.store == "redis"
    assert redis_client.get(Keys.TOTAL) is None
    assert cases(mongo_server, mongo_db_name).count_documents({}) == 1

    monkeypatch.setattr(storage, "_count_script", real_script)
    retried = storage.store(record, names.PATH_GRPC)
    again = storage.store(record, names.PATH_GRPC)

    assert retried is True
    assert again is False
    assert cases(mongo_server, mongo_db_name).count_documents({}) == 1
    assert redis_client.get(Keys.TOTAL) == "1"


def test_mongo_down_raises_storage_error(redis_server, redis_client):
    # Nothing listens on port 1, so server selection fails within its timeout.
    storage = Storage.from_urls(
        "mongodb://127.0.0.1:1/?retryWrites=false&serverSelectionTimeoutMS=300",
        "covid_down",
        redis_server.url,
    )
    with pytest.raises(StorageError) as failure:
        storage.store(make_record(4), names.PATH_GRPC)
    assert failure.value.store == "mongo"
    assert failure.value.record_ids == ["rec-4"]
    assert redis_client.get(Keys.TOTAL) is None


def test_store_many_reports_new_and_duplicate(
    storage, redis_client, mongo_server, mongo_db_name
):
    storage.store(make_record(10), names.PATH_GRPC)
    batch = [make_record(index) for index in (10, 11, 12)]

    results = storage.store_many(batch, names.PATH_GRPC)

    assert [(r.record_id, r.created) for r in results] == [
        ("rec-10", False),
        ("rec-11", True),
        ("rec-12", True),
    ]
    assert cases(mongo_server, mongo_db_name).count_documents({}) == 3
    assert redis_client.get(Keys.TOTAL) == "3"
    newest = orjson.loads(redis_client.lindex(Keys.LATEST, 0))
    assert newest["record_id"] == "rec-12"


def test_store_many_retry_counts_once(storage, redis_client):
    batch = [make_record(index) for index in range(20, 25)]

    storage.store_many(batch, names.PATH_REDIS)
    results = storage.store_many(batch, names.PATH_REDIS)

    assert not any(result.created for result in results)
    assert redis_client.get(Keys.TOTAL) == "5"
    assert redis_client.hget(Keys.BY_PATH, "redis") == "5"


def test_latest_list_is_capped(storage, redis_client):
    batch = [make_record(index) for index in range(LATEST_MAX + 20)]

    storage.store_many(batch, names.PATH_GRPC)

    assert redis_client.llen(Keys.LATEST) == LATEST_MAX
    newest = orjson.loads(redis_client.lindex(Keys.LATEST, 0))
    assert newest["record_id"] == f"rec-{LATEST_MAX + 19}"


def test_unique_index_exists(storage, mongo_server, mongo_db_name):
    storage.ensure_indexes()  # a second call must not fail

    indexes = cases(mongo_server, mongo_db_name).index_information()

    unique = [spec for spec in indexes.values() if spec.get("unique")]
    assert [spec["key"] for spec in unique] == [[("record_id", 1)]]


def test_received_at_round_trips_as_utc(storage, mongo_server, mongo_db_name):
    moment = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    record = make_record(30, received_at="2024-05-01T12:00:00.123Z")

    storage.store(record, names.PATH_GRPC)

    document = cases(mongo_server, mongo_db_name).find_one({"record_id": "rec-30"})
    assert document["received_at"] == moment
