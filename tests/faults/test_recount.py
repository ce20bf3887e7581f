"""Views of a record whose store failed after its insert are counted later."""

from __future__ import annotations

import pymongo
import pytest
import redis
from covid_common import names
from covid_common import storage as storage_module
from covid_common.record import CaseInput, new_record
from covid_common.storage import StorageError


def record(index: int):
    case = CaseInput(
        name=f"Rosa Tzul {index}",
        location="Sololá",
        age=52,
        infected_type="contact",
        state="moderate",
        record_id=f"recount-{index}",
    )
    return new_record(case, names.PATH_GRPC)


def fail_redis_step(storage, monkeypatch) -> None:
    def failing_script(*args, **kwargs):
        raise redis.ConnectionError("connection dropped")

    monkeypatch.setattr(storage, "_count_script", failing_script)


def test_failed_count_is_recounted(storage, redis_client, monkeypatch):
    real_script = storage._count_script
    fail_redis_step(storage, monkeypatch)
    with pytest.raises(StorageError):
        storage.store(record(1), names.PATH_GRPC)
    monkeypatch.setattr(storage, "_count_script", real_script)

    waiting = storage.uncounted
    counted = storage.recount_uncounted()

    assert waiting == 1
    assert counted == 1
    assert storage.uncounted == 0
    assert redis_client.get(names.RedisKeys.TOTAL) == "1"
    assert storage.recount_uncounted() == 0
    assert storage.store(record(1), names.PATH_GRPC) is False
    assert redis_client.get(names.RedisKeys.TOTAL) == "1"


def test_next_store_runs_the_recount(storage, redis_client, monkeypatch):
    real_script = storage._count_script
    fail_redis_step(storage, monkeypatch)
    with pytest.raises(StorageError):
        storage.store(record(2), names.PATH_GRPC)
    monkeypatch.setattr(storage, "_count_script", real_script)
    monkeypatch.setattr(storage_module, "RECOUNT_INTERVAL_S", 0.0)

    storage.store(record(3), names.PATH_GRPC)

    assert redis_client.get(names.RedisKeys.TOTAL) == "2"
    assert storage.uncounted == 0


def test_record_without_document_is_not_counted(
    storage, redis_client, mongo_server, mongo_db_name, monkeypatch
):
    real_script = storage._count_script
    monkeypatch.setattr(storage_module, "RECOUNT_WINDOW_S", 0.0)
    fail_redis_step(storage, monkeypatch)
    with pytest.raises(StorageError):
        storage.store(record(4), names.PATH_GRPC)
    monkeypatch.setattr(storage, "_count_script", real_script)
    # The insert never happened, as when MongoDB rejected it.
    with pymongo.MongoClient(mongo_server.url) as client:
        client[mongo_db_name][names.MONGO_CASES_COLLECTION].delete_many({})

    counted = storage.recount_uncounted()

    assert counted == 0
    assert storage.uncounted == 0
    assert redis_client.get(names.RedisKeys.TOTAL) is None
