"""Fixtures for the service tests: a Storage on the session's real servers."""

from __future__ import annotations

import pytest
import redis
from covid_common.storage import Storage

from tests.support.servers import ServerProcess


@pytest.fixture
def storage(
    mongo_server: ServerProcess,
    mongo_db_name: str,
    redis_server: ServerProcess,
    redis_client: redis.Redis,
) -> Storage:
    """A Storage on a fresh Mongo database and an emptied Redis."""
    store = Storage.from_urls(mongo_server.url, mongo_db_name, redis_server.url)
    store.ensure_indexes()
    yield store
    store.close()
