"""Fixtures shared by every test layer: real Redis and SecantusDB servers."""

from __future__ import annotations

import pymongo
import pytest
import redis

from tests.support.servers import ServerProcess, running, start_redis, start_secantus


@pytest.fixture(scope="session")
def redis_server() -> ServerProcess:
    with running(start_redis) as server:
        yield server


@pytest.fixture(scope="session")
def mongo_server() -> ServerProcess:
    with running(start_secantus) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: ServerProcess) -> redis.Redis:
    """A client of the session's Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def mongo_db_name(mongo_server: ServerProcess, request: pytest.FixtureRequest) -> str:
    """A database name of this test's own, dropped after the test."""
    name = "test_" + request.node.name.replace("[", "_").replace("]", "_")[:40]
    yield name
    with pymongo.MongoClient(mongo_server.url) as client:
        client.drop_database(name)
