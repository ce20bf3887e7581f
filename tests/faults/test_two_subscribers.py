"""Two redis-sub processes on one Redis never store or count a record twice.

In pub/sub mode both receive every message, so the unique index and the
counting script must turn the second store of each record into a duplicate.
In streams mode the consumer group hands each entry to one of them.
"""

from __future__ import annotations

import pymongo
import pytest
from covid_common import names
from covid_common.config import RedisPubConfig
from covid_common.record import CaseInput, new_record
from redis_pub.app import create_app as create_redis_pub

from tests.integration.support import (
    AppServer,
    ServiceProcess,
    get,
    metric_value,
    post_json,
    wait_ready,
)
from tests.support.servers import free_port, wait_until

RECORDS = 60


def routed(index: int) -> dict:
    case = CaseInput(
        name=f"Marta Ruiz {index}",
        location=("Escuintla", "Mixco", "Cobán")[index % 3],
        age=index,
        infected_type="communitary",
        state="recovered",
        record_id=f"twice-{index}",
    )
    return new_record(case, names.PATH_REDIS).to_dict()


def subscriber_metrics(port: int) -> str:
    return get(f"http://127.0.0.1:{port}/metrics").data.decode()


@pytest.mark.parametrize("mode", ["pubsub", "streams"])
def test_two_subscribers_store_each_record_once(
    mode, mongo_server, mongo_db_name, redis_server, redis_client, tmp_path
):
    ports = [free_port(), free_port()]
    subscribers = [
        ServiceProcess.module(
            "redis_sub",
            {
                "HTTP_PORT": str(port),
                "MONGO_URL": mongo_server.url,
                "MONGO_DB": mongo_db_name,
                "REDIS_URL": redis_server.url,
                "REDIS_MODE": mode,
            },
            tmp_path / f"redis-sub-{index}.log",
        )
        for index, port in enumerate(ports)
    ]
    publisher = AppServer(
        create_redis_pub(RedisPubConfig("INFO", 0, redis_server.url, mode))
    )
    try:
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}", f"redis-sub on {port} ({mode})")
        statuses = [
            post_json(publisher.url + "/cases", routed(i)).status
            for i in range(RECORDS)
        ]
        wait_until(
            lambda: redis_client.get(names.RedisKeys.TOTAL) == str(RECORDS),
            f"{RECORDS} records counted",
        )
        # Pub/sub: each subscriber stores every record, so wait for both.
        expected_handled = RECORDS * (2 if mode == "pubsub" else 1)
        wait_until(
            lambda: (
                sum(
                    metric_value(subscriber_metrics(p), "covid_records_stored_total")
                    + metric_value(
                        subscriber_metrics(p), "covid_records_duplicate_total"
                    )
                    for p in ports
                )
                == expected_handled
            ),
            f"{expected_handled} stores reported by the subscribers",
        )
        texts = [subscriber_metrics(port) for port in ports]
    finally:
        publisher.stop()
        codes = [subscriber.stop() for subscriber in subscribers]

    with pymongo.MongoClient(mongo_server.url) as client:
        cases = client[mongo_db_name][names.MONGO_CASES_COLLECTION]
        ids = [doc["record_id"] for doc in cases.find({}, {"record_id": 1})]
    stored = sum(metric_value(t, "covid_records_stored_total") for t in texts)
    duplicates = sum(metric_value(t, "covid_records_duplicate_total") for t in texts)

    assert statuses == [201] * RECORDS
    assert len(ids) == RECORDS
    assert len(set(ids)) == RECORDS
    assert redis_client.get(names.RedisKeys.TOTAL) == str(RECORDS)
    assert redis_client.scard(names.RedisKeys.COUNTED_IDS) == RECORDS
    assert redis_client.llen(names.RedisKeys.LATEST) == RECORDS
    assert stored == RECORDS
    assert duplicates == (RECORDS if mode == "pubsub" else 0)
    assert codes == [0, 0]
