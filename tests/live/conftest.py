"""Fixtures of the live service tests: an app on the session's Redis and SecantusDB."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pymongo
import pytest
import redis
from covid_common import names
from covid_common.config import StorageConfig
from covid_common.record import CaseRecord, new_record, validate_case
from covid_common.storage import Storage
from flask import Flask
from flask.testing import FlaskClient
from live.app import create_app
from live.config import LiveConfig

from tests.support.servers import ServerProcess


@pytest.fixture
def storage_config(
    mongo_server: ServerProcess,
    redis_server: ServerProcess,
    redis_client: redis.Redis,
    mongo_db_name: str,
) -> StorageConfig:
    """Storage settings of this test: an emptied Redis and a database of its own."""
    return StorageConfig(mongo_server.url, mongo_db_name, redis_server.url)


@pytest.fixture
def live_app(storage_config: StorageConfig) -> Flask:
    """The live app with a zero summary TTL, so each request after the first
    starts a fresh aggregation."""
    config = LiveConfig(
        log_level="INFO", http_port=0, storage=storage_config, summary_ttl_s=0.0
    )
    app = create_app(config, start_background=False)
    app.extensions["live"]["reader"].ensure_indexes()
    return app


@pytest.fixture
def client(live_app: Flask) -> FlaskClient:
    return live_app.test_client()


@pytest.fixture
def storage(storage_config: StorageConfig) -> Iterator[Storage]:
    """The storage module that both paths use, writing to this test's stores."""
    store = Storage.from_urls(
        storage_config.mongo_url, storage_config.mongo_db, storage_config.redis_url
    )
    store.ensure_indexes()
    yield store
    store.close()


@pytest.fixture
def cases_collection(
    storage_config: StorageConfig,
) -> Iterator[pymongo.collection.Collection]:
    client = pymongo.MongoClient(storage_config.mongo_url, tz_aware=True)
    yield client[storage_config.mongo_db][names.MONGO_CASES_COLLECTION]
    client.close()


def make_record(
    name: str,
    location: str = "Guatemala City",
    age: int = 35,
    infected_type: str = "communitary",
    state: str = "asymptomatic",
    path: str = names.PATH_GRPC,
) -> CaseRecord:
    case = validate_case(
        {
            "name": name,
            "location": location,
            "age": age,
            "infected_type": infected_type,
            "state": state,
        }
    )
    return new_record(case, path, datetime.now(UTC))


def store_by_path(storage: Storage, records: Sequence[CaseRecord]) -> None:
    """Store each record through the storage module, under its own path."""
    for path in names.PATHS:
        batch = [record for record in records if record.path == path]
        if batch:
            storage.store_many(batch, path)
