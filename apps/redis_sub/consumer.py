"""Message loops of the Redis path: pub/sub and streams, selected by REDIS_MODE.

Both consumers share one interface: `run(stop)` loops until `stop` is set,
finishing the message in hand, and `is_ready()` returns whether the consumer is
connected and reading. Each reconnects by itself with backoff after a lost
connection or a Redis restart, counting each reconnect.

- PubSubConsumer: SUBSCRIBE to RedisKeys.CHANNEL. A message is one record (a
  JSON object) or a batch (a JSON array of records). Messages that are already
  waiting are stored together, up to STORE_BATCH_RECORDS records in one
  store_many. Pub/sub has no redelivery, so records whose storage keeps
  failing after STORE_ATTEMPTS are logged and dropped.
- StreamConsumer: XREADGROUP on RedisKeys.STREAM in group STREAM_GROUP, XACK
  after storage, and XAUTOCLAIM of entries left pending by a consumer that
  died or by a failed store. An entry is lost only when redis-pub trims the
  stream past it (STREAM_MAX_LEN) before it is stored.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable

import orjson
import redis
from covid_common import metrics, names
from covid_common.record import CaseRecord, parse_record
from covid_common.storage import Storage, StorageError
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

logger = logging.getLogger(__name__)

STORE_ATTEMPTS = 5
RECONNECT_BASE_S = 0.1
RECONNECT_MAX_S = 5.0
# A message poll waits this long, so a stop request is seen within it.
POLL_TIMEOUT_S = 0.5
# Field of a stream entry that contains the record JSON (see redis_pub).
STREAM_FIELD = b"record"
STREAM_BATCH = 100
# Records stored together by the pub/sub consumer. One insert_many of 100
# documents costs far less per record than 100 single inserts.
STORE_BATCH_RECORDS = 500

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


def connect(redis_url: str) -> redis.Redis:
    """Create a client without redis-py's own retries; the consumer loop reconnects."""
    return redis.Redis.from_url(
        redis_url,
        socket_connect_timeout=2,
        socket_timeout=10,
        retry=Retry(NoBackoff(), 0),
    )


def decode_record(payload: bytes) -> CaseRecord:
    """Parse a message payload; raise ValueError when it is not a valid record."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"payload is not JSON: {error}") from error
    return parse_record(data)


def decode_records(payload: bytes) -> list[CaseRecord]:
    """Parse a pub/sub payload, one record or an array of them.

    Invalid records in an array are logged and skipped; raise ValueError when
    the payload is not JSON or a single record is invalid.
    """
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"payload is not JSON: {error}") from error
    if not isinstance(data, list):
        return [parse_record(data)]
    records = []
    for index, item in enumerate(data):
        try:
            records.append(parse_record(item))
        except ValueError as error:
            logger.error(
                "dropped invalid record %d of a batch message: %s", index, error
            )
    return records


class Backoff:
    """Exponential pauses with full jitter, reset after a success."""

    def __init__(self, base_s: float, max_s: float, rng: random.Random | None = None):
        self._base_s = base_s
        self._max_s = max_s
        self._rng = rng or random.Random()
        self.failures = 0

    def next_pause(self) -> float:
        self.failures += 1
        cap = min(self._max_s, self._base_s * 2 ** (self.failures - 1))
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.failures = 0


class PubSubConsumer:
    """Subscribes to the channel and stores each message."""

    def __init__(
        self,
        redis_url: str,
        storage: Storage,
        heartbeat_interval_s: float = 2.0,
        client_factory: Callable[[str], redis.Redis] = connect,
    ):
        self._redis_url = redis_url
        self._storage = storage
        self._heartbeat_interval_s = heartbeat_interval_s
        self._client_factory = client_factory
        self._subscribed = threading.Event()
        self.stored = 0

    def is_ready(self) -> bool:
        return self._subscribed.is_set()

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(RECONNECT_BASE_S, RECONNECT_MAX_S)
        connected_before = False
        while not stop.is_set():
            client = self._client_factory(self._redis_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(names.RedisKeys.CHANNEL)
                if connected_before:
                    metrics.REDIS_SUBSCRIBER_RECONNECTS.inc()
                    logger.info("resubscribed to %s", names.RedisKeys.CHANNEL)
                else:
                    logger.info("subscribed to %s", names.RedisKeys.CHANNEL)
                connected_before = True
                self._listen(pubsub, stop, backoff)
            except _CONNECTION_ERRORS as error:
                self._subscribed.clear()
                pause = backoff.next_pause()
                logger.warning(
                    "Redis connection lost (%r); reconnecting in %.2f s", error, pause
                )
                stop.wait(pause)
            finally:
                self._subscribed.clear()
                _close_quietly(pubsub, client)
        logger.info("pub/sub consumer stopped after storing %d records", self.stored)

    def _listen(
        self, pubsub: redis.client.PubSub, stop: threading.Event, backoff: Backoff
    ) -> None:
        last_ping = 0.0
        last_pong = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now - last_ping >= self._heartbeat_interval_s:
                # The PONG arrives as a message below; a connection that stops
                # returning them is treated as lost.
                pubsub.ping()
                last_ping = now
            if now - last_pong > 3 * self._heartbeat_interval_s + POLL_TIMEOUT_S:
                raise RedisConnectionError("no PONG from Redis within 3 heartbeats")

            records: list[CaseRecord] = []
            timeout = POLL_TIMEOUT_S
            # After the first message, take the ones already waiting without
            # blocking, so one store covers every record that queued up.
            while len(records) < STORE_BATCH_RECORDS:
                message = pubsub.get_message(timeout=timeout)
                if message is None:
                    break
                timeout = 0.0
                if message["type"] == "pong":
                    # Redis replies to the PING after the SUBSCRIBE, so the
                    # first PONG also confirms the subscription.
                    last_pong = time.monotonic()
                    metrics.REDIS_SUBSCRIBER_LAST_MESSAGE.set(time.time())
                    self._subscribed.set()
                    backoff.reset()
                elif message["type"] == "message":
                    # A data message proves the connection alive too. While
                    # stores are slow the PONGs wait behind a backlog, and
                    # resubscribing would drop every message still queued.
                    last_pong = time.monotonic()
                    metrics.REDIS_SUBSCRIBER_LAST_MESSAGE.set(time.time())
                    records += self._decode(message["data"])
            if records:
                self._store(records)
                # Time spent storing is not silence of the connection.
                last_pong = time.monotonic()

    def _decode(self, payload: bytes) -> list[CaseRecord]:
        try:
            return decode_records(payload)
        except ValueError as error:
            logger.error("dropped invalid message: %s", error)
            return []

    def _store(self, records: list[CaseRecord]) -> None:
        label = records[0].record_id
        if len(records) > 1:
            label += f" and {len(records) - 1} more"
        retry = Backoff(0.1, 2.0)
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                self._storage.store_many(records, names.PATH_REDIS)
                self.stored += len(records)
                return
            except StorageError as error:
                if attempt == STORE_ATTEMPTS:
                    logger.error(
                        "dropped record_id=%s after %d failed store attempts: %s",
                        label,
                        attempt,
                        error,
                    )
                    return
                pause = retry.next_pause()
                logger.warning(
                    "store failed record_id=%s (attempt %d), retrying in %.2f s: %s",
                    label,
                    attempt,
                    pause,
                    error,
                )
                time.sleep(pause)


class StreamConsumer:
    """Reads the stream in a consumer group and acknowledges after storage."""

    def __init__(
        self,
        redis_url: str,
        storage: Storage,
        claim_min_idle_s: float = 30.0,
        consumer_name: str | None = None,
        client_factory: Callable[[str], redis.Redis] = connect,
    ):
        self._redis_url = redis_url
        self._storage = storage
        self._claim_min_idle_ms = int(claim_min_idle_s * 1000)
        self._claim_interval_s = max(1.0, claim_min_idle_s / 2)
        self._consumer = consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        self._client_factory = client_factory
        self._ready = threading.Event()
        self.stored = 0

    def is_ready(self) -> bool:
        return self._ready.is_set()

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(RECONNECT_BASE_S, RECONNECT_MAX_S)
        connected_before = False
        while not stop.is_set():
            client = self._client_factory(self._redis_url)
            try:
                self._ensure_group(client)
                if connected_before:
                    metrics.REDIS_SUBSCRIBER_RECONNECTS.inc()
                    logger.info("reconnected to stream %s", names.RedisKeys.STREAM)
                connected_before = True
                self._ready.set()
                self._read(client, stop, backoff)
            except _CONNECTION_ERRORS as error:
                self._ready.clear()
                pause = backoff.next_pause()
                logger.warning(
                    "Redis connection lost (%r); reconnecting in %.2f s", error, pause
                )
                stop.wait(pause)
            finally:
                self._ready.clear()
                client.close()
        logger.info("stream consumer stopped after storing %d records", self.stored)

    def _ensure_group(self, client: redis.Redis) -> None:
        try:
            client.xgroup_create(
                names.RedisKeys.STREAM,
                names.RedisKeys.STREAM_GROUP,
                id="0",
                mkstream=True,
            )
            logger.info(
                "created consumer group %s on %s",
                names.RedisKeys.STREAM_GROUP,
                names.RedisKeys.STREAM,
            )
        except ResponseError as error:
            # BUSYGROUP: the group exists, which is the normal case.
            if "BUSYGROUP" not in str(error):
                raise

    def _read(
        self, client: redis.Redis, stop: threading.Event, backoff: Backoff
    ) -> None:
        last_claim = 0.0
        while not stop.is_set():
            if time.monotonic() - last_claim >= self._claim_interval_s:
                self._claim_stale(client)
                last_claim = time.monotonic()
            try:
                reply = client.xreadgroup(
                    names.RedisKeys.STREAM_GROUP,
                    self._consumer,
                    {names.RedisKeys.STREAM: ">"},
                    count=STREAM_BATCH,
                    block=int(POLL_TIMEOUT_S * 1000),
                )
            except ResponseError as error:
                # NOGROUP: the stream or group was deleted (e.g. FLUSHALL or a
                # Redis restart without persistence); create them again.
                if "NOGROUP" not in str(error):
                    raise
                logger.warning("consumer group missing, creating it again")
                self._ensure_group(client)
                continue
            metrics.REDIS_SUBSCRIBER_LAST_MESSAGE.set(time.time())
            backoff.reset()
            for _stream, entries in reply or []:
                self._handle(client, entries)

    def _claim_stale(self, client: redis.Redis) -> None:
        """Take over entries another consumer read but never acknowledged."""
        start = "0-0"
        while True:
            reply = client.xautoclaim(
                names.RedisKeys.STREAM,
                names.RedisKeys.STREAM_GROUP,
                self._consumer,
                self._claim_min_idle_ms,
                start_id=start,
                count=STREAM_BATCH,
            )
            start, entries = reply[0], reply[1]
            if entries:
                logger.info("claimed %d pending stream entries", len(entries))
                self._handle(client, entries)
            if start in (b"0-0", "0-0") or not entries:
                return

    def _handle(self, client: redis.Redis, entries: list) -> None:
        records: list[CaseRecord] = []
        ids = []
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                client.xack(
                    names.RedisKeys.STREAM, names.RedisKeys.STREAM_GROUP, entry_id
                )
                continue
            try:
                records.append(decode_record(fields.get(STREAM_FIELD, b"")))
                ids.append(entry_id)
            except ValueError as error:
                # A malformed entry would fail the same way forever, so it is
                # acknowledged and dropped.
                logger.error("dropped invalid stream entry %s: %s", entry_id, error)
                client.xack(
                    names.RedisKeys.STREAM, names.RedisKeys.STREAM_GROUP, entry_id
                )
        if not records:
            return
        try:
            self._storage.store_many(records, names.PATH_REDIS)
        except StorageError as error:
            # Unacknowledged entries stay pending, and _claim_stale takes them
            # again once they have been idle for claim_min_idle_s.
            logger.error("store failed for %d stream entries: %s", len(records), error)
            return
        client.xack(names.RedisKeys.STREAM, names.RedisKeys.STREAM_GROUP, *ids)
        self.stored += len(records)


def _close_quietly(pubsub: redis.client.PubSub, client: redis.Redis) -> None:
    try:
        pubsub.close()
        client.close()
    except (RedisError, OSError) as error:
        logger.debug("ignored error while closing Redis connection: %r", error)
