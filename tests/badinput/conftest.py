"""A router in front of both real paths, with real Redis and SecantusDB.

`routers` returns two routers on the same path services: one sends every
record to the gRPC path, the other every record to the Redis path, so a test
can check that a bad request gets the same answer whichever path it would
have taken.
"""

from __future__ import annotations

import random

import pymongo
import pytest
from covid_common import names
from covid_common.config import (
    GrpcClientConfig,
    GrpcServerConfig,
    RedisPubConfig,
    RouterConfig,
    StorageConfig,
)
from grpc_client.app import create_app as create_grpc_client
from grpc_server.server import start as start_grpc_server
from redis_pub.app import create_app as create_redis_pub
from router.app import create_app as create_router

from tests.integration.support import AppServer, ServiceProcess, wait_ready
from tests.support.servers import free_port


def _router(path_urls: dict[str, str], weights: dict[str, int]) -> AppServer:
    config = RouterConfig(
        log_level="WARNING",
        http_port=0,
        route_weights=weights,
        path_urls=path_urls,
        downstream_timeout_s=5.0,
    )
    return AppServer(create_router(config, random.Random(3)))


@pytest.fixture(scope="module")
def badinput_db(mongo_server) -> str:
    name = "badinput"
    with pymongo.MongoClient(mongo_server.url) as client:
        client.drop_database(name)
    yield name
    with pymongo.MongoClient(mongo_server.url) as client:
        client.drop_database(name)


@pytest.fixture(scope="module")
def routers(mongo_server, badinput_db, redis_server, tmp_path_factory):
    """Routers by path they send everything to, plus "both" (50/50)."""
    storage = StorageConfig(mongo_server.url, badinput_db, redis_server.url)
    grpc_server = start_grpc_server(
        GrpcServerConfig("WARNING", free_port(), free_port(), storage, max_workers=8),
        host="127.0.0.1",
    )
    grpc_client = AppServer(
        create_grpc_client(
            GrpcClientConfig("WARNING", 0, f"127.0.0.1:{grpc_server.grpc_port}", 3.0)
        )
    )
    redis_pub = AppServer(
        create_redis_pub(RedisPubConfig("WARNING", 0, redis_server.url, "streams"))
    )
    sub_port = free_port()
    redis_sub = ServiceProcess.module(
        "redis_sub",
        {
            "HTTP_PORT": str(sub_port),
            "MONGO_URL": mongo_server.url,
            "MONGO_DB": badinput_db,
            "REDIS_URL": redis_server.url,
            "REDIS_MODE": "streams",
            "LOG_LEVEL": "WARNING",
        },
        tmp_path_factory.mktemp("badinput") / "redis-sub.log",
    )
    urls = {names.PATH_GRPC: grpc_client.url, names.PATH_REDIS: redis_pub.url}
    built = {
        names.PATH_GRPC: _router(urls, {names.PATH_GRPC: 100, names.PATH_REDIS: 0}),
        names.PATH_REDIS: _router(urls, {names.PATH_GRPC: 0, names.PATH_REDIS: 100}),
        "both": _router(urls, {names.PATH_GRPC: 50, names.PATH_REDIS: 50}),
    }
    try:
        wait_ready(f"http://127.0.0.1:{sub_port}", "redis-sub reading the stream")
        wait_ready(grpc_client.url, "grpc-client sees a SERVING grpc-server")
        yield built
    finally:
        for router in built.values():
            router.stop()
        redis_sub.stop()
        redis_pub.stop()
        grpc_client.stop()
        grpc_server.stop(grace_s=1)


@pytest.fixture(scope="module")
def cases(mongo_server, badinput_db):
    with pymongo.MongoClient(mongo_server.url) as client:
        yield client[badinput_db][names.MONGO_CASES_COLLECTION]
