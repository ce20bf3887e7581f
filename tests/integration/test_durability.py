"""Acknowledged stores survive a SIGKILL of the database server."""

from __future__ import annotations

import pymongo
import redis
from covid_common import names
from covid_common.storage import Storage, durable_write_concern
from pymongo.write_concern import WriteConcern

from tests.integration.test_storage import make_record
from tests.support.servers import running, start_secantus, wait_until


def test_write_concern_defaults_to_journaled():
    concern = durable_write_concern(WriteConcern())

    assert concern.document == {"w": "majority", "j": True}


def test_write_concern_from_url_is_kept():
    client = pymongo.MongoClient("mongodb://127.0.0.1:1/?w=1", connect=False)

    concern = durable_write_concern(client.write_concern)

    assert concern.document == {"w": 1}


def test_acknowledged_stores_survive_sigkill(redis_server, redis_client):
    count = 300
    with running(start_secantus) as mongo:
        storage = Storage.from_urls(mongo.url, "durability", redis_server.url)
        storage.ensure_indexes()
        for index in range(count):
            storage.store(make_record(index), names.PATH_GRPC)

        # No grace: the server gets no chance to flush what it acknowledged.
        mongo.stop(sig_kill=True)
        storage.close()
        mongo.start()

        with pymongo.MongoClient(mongo.url) as client:
            cases = client["durability"][names.MONGO_CASES_COLLECTION]

            def answers() -> bool:
                client.admin.command("ping")
                return True

            wait_until(answers, "SecantusDB after the restart", timeout_s=60)
            assert cases.count_documents({}) == count
    assert (
        int(redis.Redis.from_url(redis_server.url).get(names.RedisKeys.TOTAL)) == count
    )
