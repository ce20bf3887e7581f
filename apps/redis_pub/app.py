"""redis-pub service: POST /cases publishes one routed record to Redis.

In "pubsub" mode the record JSON is PUBLISHed on RedisKeys.CHANNEL; in
"streams" mode it is added to RedisKeys.STREAM with XADD, under the field
"record". Replies: 201 {"record_id", "published": true}; 422 for an invalid
record; 503 {"error": "no_subscriber"} when a PUBLISH reached no subscriber
(the record is lost, so the caller should treat it as not delivered); 503
{"error": "redis_unavailable"} when Redis fails. Pub/sub cannot tell a
duplicate record_id, so a resent record also gets 201 (storage still counts it
once).

POST /cases/batch takes {"records": [...]} (1 to MAX_BATCH_RECORDS records, all
valid, or 422 naming each bad field). In "pubsub" mode the whole batch is one
message, a JSON array; in "streams" mode each record is its own entry, added in
one pipeline. Replies 201 {"published": n, "record_ids": [...]}, and 503 as
above.
"""

from __future__ import annotations

import logging

import orjson
import redis
from covid_common import metrics, names
from covid_common.config import RedisPubConfig, log_config
from covid_common.http import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_BATCH_BODY_BYTES,
    MAX_BATCH_RECORDS,
    ApiError,
    create_base_app,
    json_response,
    read_json_object,
    validation_error,
)
from covid_common.perprocess import PerProcess
from covid_common.record import CaseRecord, ValidationError, parse_record
from flask import Flask, Response, g, request
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES
STREAM_FIELD = "record"
# Approximate cap of the stream in streams mode, so acknowledged entries do not
# pile up forever.
# NOTE: entries beyond the cap are trimmed even when no consumer has read them,
# so a subscriber that is down for longer than ~100,000 records loses the oldest.
STREAM_MAX_LEN = 100_000


class Publisher:
    """Sends records to the Redis path; one client per process."""

    def __init__(self, redis_url: str, mode: str):
        self._url = redis_url
        self._mode = mode
        self._client = PerProcess(self._new_client)

    def _new_client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self._url,
            socket_timeout=2,
            socket_connect_timeout=1,
            # One quick retry covers a dropped pooled connection; more would
            # only delay the 503 when Redis is down.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        )

    def publish(self, record: CaseRecord) -> int:
        """Send the record; return the receivers (pubsub) or 1 (streams)."""
        payload = orjson.dumps(record.to_dict())
        client = self._client.get()
        if self._mode == "streams":
            client.xadd(
                names.RedisKeys.STREAM,
                {STREAM_FIELD: payload},
                maxlen=STREAM_MAX_LEN,
                approximate=True,
            )
            return 1
        return client.publish(names.RedisKeys.CHANNEL, payload)

    def publish_many(self, records: list[CaseRecord]) -> int:
        """Send the records; return the receivers (pubsub) or the entries (streams)."""
        client = self._client.get()
        if self._mode == "streams":
            pipeline = client.pipeline(transaction=False)
            for record in records:
                pipeline.xadd(
                    names.RedisKeys.STREAM,
                    {STREAM_FIELD: orjson.dumps(record.to_dict())},
                    maxlen=STREAM_MAX_LEN,
                    approximate=True,
                )
            return len(pipeline.execute())
        payload = orjson.dumps([record.to_dict() for record in records])
        return client.publish(names.RedisKeys.CHANNEL, payload)

    def check_ready(self) -> dict[str, str]:
        try:
            self._client.get().ping()
        except RedisError as error:
            return {"redis": f"ping failed: {error}"}
        return {}


def create_app(config: RedisPubConfig) -> Flask:
    """Build the redis-pub app; the Redis client opens on first use per process."""
    log_config(logger, config)
    publisher = Publisher(config.redis_url, config.redis_mode)
    app = create_base_app(names.REDIS_PUB, publisher.check_ready, MAX_BATCH_BODY_BYTES)

    @app.post(names.CASES_ROUTE)
    def post_case() -> Response:
        # The app-wide limit fits a batch; one record gets the smaller limit.
        request.max_content_length = MAX_BODY_BYTES
        try:
            record = parse_record(read_json_object())
        except ValidationError as error:
            raise validation_error(error) from error
        g.record_id = record.record_id

        try:
            receivers = publisher.publish(record)
        except RedisError as error:
            logger.error("publish failed record_id=%s: %r", record.record_id, error)
            raise ApiError(
                503, "redis_unavailable", f"Redis did not accept the record: {error}."
            ) from error

        if receivers == 0:
            metrics.REDIS_PUBLISH_UNHEARD.inc()
            logger.warning("no subscriber heard record_id=%s", record.record_id)
            raise _no_subscriber()
        return json_response({"record_id": record.record_id, "published": True}, 201)

    @app.post(names.CASES_BATCH_ROUTE)
    def post_batch() -> Response:
        records = _parse_batch(read_json_object())
        label = f"{records[0].record_id} (batch of {len(records)})"
        g.record_id = label
        try:
            receivers = publisher.publish_many(records)
        except RedisError as error:
            logger.error("publish failed record_id=%s: %r", label, error)
            raise ApiError(
                503, "redis_unavailable", f"Redis did not accept the batch: {error}."
            ) from error

        if receivers == 0:
            metrics.REDIS_PUBLISH_UNHEARD.inc()
            logger.warning("no subscriber heard record_id=%s", label)
            raise _no_subscriber()
        return json_response(
            {
                "published": len(records),
                "record_ids": [record.record_id for record in records],
            },
            201,
        )

    return app


def _no_subscriber() -> ApiError:
    return ApiError(
        503,
        "no_subscriber",
        "No subscriber is listening on the Redis channel, so nothing was stored; "
        "retry later.",
    )


def _parse_batch(body: dict) -> list[CaseRecord]:
    """Return the batch's records, or raise a 422 ApiError naming every bad field."""
    problems = {str(key): "unknown field" for key in body if key != "records"}
    records = body.get("records")
    if not isinstance(records, list):
        problems["records"] = "must be a list of records"
    elif not 1 <= len(records) <= MAX_BATCH_RECORDS:
        problems["records"] = f"must contain 1 to {MAX_BATCH_RECORDS} records"
    if problems:
        raise ApiError(422, "validation_failed", "The batch is invalid.", problems)

    parsed = []
    for index, item in enumerate(records):
        try:
            parsed.append(parse_record(item))
        except ValidationError as error:
            for field, problem in error.fields.items():
                problems[f"records[{index}].{field}"] = problem
    if problems:
        raise ApiError(422, "validation_failed", "Some records are invalid.", problems)
    return parsed
