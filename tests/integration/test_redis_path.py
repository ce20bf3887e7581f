"""Redis path against real Redis and SecantusDB: redis-pub -> Redis -> redis-sub."""

from __future__ import annotations

import signal
import threading
import time

import orjson
import pymongo
import pytest
import redis
from covid_common import names
from covid_common.config import RedisPubConfig
from covid_common.record import CaseInput, new_record
from covid_common.storage import Storage
from redis_pub.app import create_app
from redis_sub.consumer import PubSubConsumer, StreamConsumer

from tests.integration.support import (
    AppServer,
    ServiceProcess,
    get,
    metric_value,
    post_json,
    wait_ready,
)
from tests.support.servers import free_port, wait_until


def routed(index: int) -> dict:
    case = CaseInput(
        name=f"Luis Perez {index}",
        location="Antigua Guatemala",
        age=67,
        infected_type="contact",
        state="severe",
        record_id=f"redis-{index}",
    )
    return new_record(case, names.PATH_REDIS).to_dict()


def publisher(redis_url: str, mode: str = "pubsub") -> AppServer:
    config = RedisPubConfig(
        log_level="INFO", http_port=0, redis_url=redis_url, redis_mode=mode
    )
    return AppServer(create_app(config))


def subscriber_env(mongo_server, mongo_db_name, redis_server, http_port, mode="pubsub"):
    return {
        "HTTP_PORT": str(http_port),
        "MONGO_URL": mongo_server.url,
        "MONGO_DB": mongo_db_name,
        "REDIS_URL": redis_server.url,
        "REDIS_MODE": mode,
    }


@pytest.fixture
def subscriber(mongo_server, mongo_db_name, redis_server, redis_client, tmp_path):
    http_port = free_port()
    process = ServiceProcess.module(
        "redis_sub",
        subscriber_env(mongo_server, mongo_db_name, redis_server, http_port),
        tmp_path / "redis-sub.log",
    )
    process.http_url = f"http://127.0.0.1:{http_port}"
    wait_ready(process.http_url, "redis-sub subscribed")
    yield process
    process.stop()


def stored_ids(mongo_server, db_name: str) -> set[str]:
    with pymongo.MongoClient(mongo_server.url) as client:
        cursor = client[db_name][names.MONGO_CASES_COLLECTION].find(
            {}, {"record_id": 1}
        )
        return {document["record_id"] for document in cursor}


def test_no_subscriber_is_503(redis_server, redis_client):
    app = publisher(redis_server.url)
    try:
        response = post_json(app.url + "/cases", routed(1))
        metrics_text = get(app.url + "/metrics").data.decode()
    finally:
        app.stop()

    assert response.status == 503
    assert response.json()["error"] == "no_subscriber"
    assert metric_value(metrics_text, "covid_redis_publish_unheard_total") >= 1


def test_redis_down_is_503():
    app = publisher(f"redis://127.0.0.1:{free_port()}/0")
    try:
        response = post_json(app.url + "/cases", routed(2))
        ready = get(app.url + "/readyz")
    finally:
        app.stop()

    assert response.status == 503
    assert response.json()["error"] == "redis_unavailable"
    assert ready.status == 503


def test_invalid_record_is_422(redis_server):
    app = publisher(redis_server.url)
    try:
        response = post_json(app.url + "/cases", {**routed(3), "extra": 1})
    finally:
        app.stop()

    assert response.status == 422
    assert response.json()["fields"] == {"extra": "unknown field"}


def test_published_record_is_stored(
    subscriber, redis_server, redis_client, mongo_server, mongo_db_name
):
    app = publisher(redis_server.url)
    try:
        responses = [post_json(app.url + "/cases", routed(i)) for i in range(5)]
    finally:
        app.stop()

    assert [r.status for r in responses] == [201] * 5
    wait_until(
        lambda: redis_client.get(names.RedisKeys.TOTAL) == "5", "5 records counted"
    )
    assert stored_ids(mongo_server, mongo_db_name) == {f"redis-{i}" for i in range(5)}
    assert redis_client.hget(names.RedisKeys.BY_PATH, "redis") == "5"
    assert redis_client.hget(names.RedisKeys.BY_AGE_RANGE, "60-69") == "5"


def test_subscriber_survives_redis_restart(
    subscriber, redis_server, redis_client, mongo_server, mongo_db_name
):
    app = publisher(redis_server.url)
    try:
        assert post_json(app.url + "/cases", routed(10)).status == 201
        wait_until(
            lambda: "redis-10" in stored_ids(mongo_server, mongo_db_name), "first"
        )

        redis_server.stop()
        wait_until(
            lambda: get(subscriber.http_url + "/readyz").status == 503,
            "redis-sub reports not ready while Redis is down",
        )
        redis_server.start()
        wait_until(
            lambda: redis.Redis.from_url(redis_server.url).ping(), "Redis restarted"
        )
        wait_ready(subscriber.http_url, "redis-sub resubscribed")

        after = post_json(app.url + "/cases", routed(11))
    finally:
        app.stop()

    assert after.status == 201
    wait_until(
        lambda: "redis-11" in stored_ids(mongo_server, mongo_db_name),
        "record published after the restart stored",
    )
    metrics_text = get(subscriber.http_url + "/metrics").data.decode()
    assert metric_value(metrics_text, "covid_redis_subscriber_reconnects_total") >= 1
    assert subscriber.process.poll() is None


def test_heartbeat_gauge_moves(subscriber):
    def heartbeat() -> float:
        text = get(subscriber.http_url + "/metrics").data.decode()
        return metric_value(
            text, "covid_redis_subscriber_last_message_timestamp_seconds"
        )

    first = heartbeat()
    wait_until(lambda: heartbeat() > first, "heartbeat newer than the first reading")
    assert first > 0


def test_sigterm_exits_zero(subscriber):
    subscriber.process.send_signal(signal.SIGTERM)
    code = subscriber.process.wait(timeout=20)

    assert code == 0, subscriber.log()
    assert "received SIGTERM" in subscriber.log()


def test_streams_mode_stores_records(
    redis_server, redis_client, mongo_server, mongo_db_name, tmp_path
):
    http_port = free_port()
    process = ServiceProcess.module(
        "redis_sub",
        subscriber_env(mongo_server, mongo_db_name, redis_server, http_port, "streams"),
        tmp_path / "redis-sub-streams.log",
    )
    app = publisher(redis_server.url, mode="streams")
    try:
        wait_ready(f"http://127.0.0.1:{http_port}", "stream consumer ready")
        responses = [post_json(app.url + "/cases", routed(i)) for i in range(20, 23)]
        wait_until(
            lambda: redis_client.get(names.RedisKeys.TOTAL) == "3", "3 stream records"
        )
        pending = redis_client.xpending(
            names.RedisKeys.STREAM, names.RedisKeys.STREAM_GROUP
        )
    finally:
        app.stop()
        code = process.stop()

    assert [r.status for r in responses] == [201] * 3
    assert pending["pending"] == 0
    assert code == 0, process.log()


def test_stream_consumer_claims_abandoned_entries(
    redis_server, redis_client, mongo_server, mongo_db_name
):
    stream, group = names.RedisKeys.STREAM, names.RedisKeys.STREAM_GROUP
    redis_client.xgroup_create(stream, group, id="0", mkstream=True)
    redis_client.xadd(stream, {"record": orjson.dumps(routed(30))})
    # A consumer that read the entry and died before acknowledging it.
    redis_client.xreadgroup(group, "dead-consumer", {stream: ">"}, count=10)

    storage = Storage.from_urls(mongo_server.url, mongo_db_name, redis_server.url)
    storage.ensure_indexes()
    consumer = StreamConsumer(
        redis_server.url, storage, claim_min_idle_s=0.2, consumer_name="alive"
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: "redis-30" in stored_ids(mongo_server, mongo_db_name),
            "abandoned entry claimed and stored",
        )
        wait_until(
            lambda: redis_client.xpending(stream, group)["pending"] == 0,
            "claimed entry acknowledged",
        )
    finally:
        stop.set()
        thread.join(timeout=10)
        storage.close()

    assert not thread.is_alive()
    assert redis_client.get(names.RedisKeys.TOTAL) == "1"


class SlowStorage(Storage):
    """Real storage whose every store first waits, like a database under load."""

    delay_s = 0.6

    def store_many(self, records, path):
        time.sleep(self.delay_s)
        return super().store_many(records, path)


def test_slow_storage_keeps_subscription(
    redis_server, redis_client, mongo_server, mongo_db_name
):
    # While the subscriber stores, its heartbeat PONGs wait behind the data
    # messages. Messages that keep arriving prove the connection alive, so it
    # must not resubscribe, which would drop every message still queued.
    storage = SlowStorage.from_urls(mongo_server.url, mongo_db_name, redis_server.url)
    storage.ensure_indexes()
    consumer = PubSubConsumer(redis_server.url, storage, heartbeat_interval_s=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    expected = {f"redis-{index}" for index in range(40)}
    try:
        wait_until(consumer.is_ready, "pub/sub consumer subscribed")
        for index in range(40):
            redis_client.publish(names.RedisKeys.CHANNEL, orjson.dumps(routed(index)))
            time.sleep(0.05)
        wait_until(
            lambda: stored_ids(mongo_server, mongo_db_name) == expected,
            "all 40 published records stored",
            timeout_s=30,
        )
    finally:
        stop.set()
        thread.join(timeout=10)
        storage.close()

    assert not thread.is_alive()
