"""redis-sub process: the consumer loop, the storage and an HTTP probe thread.

/readyz succeeds while the consumer is subscribed (pubsub) or reading its
consumer group (streams). SIGTERM or SIGINT stops taking messages; the message
in hand is stored first, then the process exits with status 0.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from covid_common import names
from covid_common.config import (
    ConfigError,
    RedisSubConfig,
    load_redis_sub_config,
    log_config,
)
from covid_common.logs import setup_logging
from covid_common.probes import ProbeServer
from covid_common.storage import Storage
from pymongo.errors import PyMongoError

from redis_sub.consumer import (
    RECONNECT_BASE_S,
    RECONNECT_MAX_S,
    Backoff,
    PubSubConsumer,
    StreamConsumer,
)

logger = logging.getLogger(__name__)


def build_consumer(
    config: RedisSubConfig, storage: Storage
) -> PubSubConsumer | StreamConsumer:
    """Return the consumer for config.redis_mode ("pubsub" or "streams")."""
    if config.redis_mode == "streams":
        return StreamConsumer(
            config.storage.redis_url, storage, config.claim_min_idle_s
        )
    return PubSubConsumer(
        config.storage.redis_url, storage, config.heartbeat_interval_s
    )


def run(config: RedisSubConfig, stop: threading.Event) -> None:
    """Consume until `stop` is set; the caller sets it, e.g. from a signal handler."""
    storage = Storage.from_urls(
        config.storage.mongo_url, config.storage.mongo_db, config.storage.redis_url
    )
    consumer = build_consumer(config, storage)

    def check_ready() -> dict[str, str]:
        if consumer.is_ready():
            return {}
        return {"redis": f"not consuming from Redis ({config.redis_mode} mode)"}

    probes = ProbeServer(
        names.REDIS_SUB, config.http_port, check_ready, config.bind_host
    )
    probes.start()
    try:
        # /healthz returns 200 meanwhile; /readyz fails until the consumer reads.
        _ensure_indexes(storage, stop)
        consumer.run(stop)
    finally:
        probes.stop()
        storage.close()
    logger.info("redis-sub stopped")


def _ensure_indexes(storage: Storage, stop: threading.Event) -> None:
    """Create the unique record_id index before consuming, retrying until it exists.

    Without the index two deliveries of one record could both insert a
    document, so the consumer never starts before it is there.
    """
    backoff = Backoff(RECONNECT_BASE_S, RECONNECT_MAX_S)
    while not stop.is_set():
        try:
            storage.ensure_indexes()
            return
        except PyMongoError as error:
            pause = backoff.next_pause()
            logger.warning(
                "could not create the record_id index (%r); retrying in %.2f s",
                error,
                pause,
            )
            stop.wait(pause)


def main() -> int:
    try:
        config = load_redis_sub_config()
    except ConfigError as error:
        print(f"redis-sub: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    log_config(logger, config)

    stop = threading.Event()

    def request_stop(signum: int, _frame) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run(config, stop)
    return 0
