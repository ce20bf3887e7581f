"""grpc-client service: POST /cases sends one routed record to the grpc-server.

Replies: 201 {"record_id", "created": true}; 200 {"record_id", "created":
false, "duplicate": true} when the id was already stored; 422 for an invalid
record; 503 {"error": "grpc_<status>"} when the record could not be delivered
within GRPC_DEADLINE_S, retries included.
POST /cases/batch takes {"records": [...]} (at most MAX_BATCH_RECORDS) and
sends them as one StoreCases stream; it replies 200 with the counts and one
result per record.
"""

from __future__ import annotations

import logging
import random

import grpc
from covid_common import names
from covid_common.config import GrpcClientConfig, log_config
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
from covid_common.record import ValidationError, parse_record
from flask import Flask, Response, g, request

from grpc_client.client import CaseIngestClient, DeliveryError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES


def create_app(config: GrpcClientConfig, rng: random.Random | None = None) -> Flask:
    """Build the grpc-client app; the gRPC channel opens on first use per process."""
    log_config(logger, config)
    client = CaseIngestClient(config.grpc_server_addr, config.grpc_deadline_s, rng)

    def check_ready() -> dict[str, str]:
        problem = client.check_health()
        return {"grpc-server": problem} if problem else {}

    app = create_base_app(names.GRPC_CLIENT, check_ready, MAX_BATCH_BODY_BYTES)

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
            created = client.store(record)
        except DeliveryError as error:
            raise _delivery_failure(error, record.record_id) from error

        if created:
            return json_response({"record_id": record.record_id, "created": True}, 201)
        return json_response(
            {"record_id": record.record_id, "created": False, "duplicate": True}, 200
        )

    @app.post(names.CASES_BATCH_ROUTE)
    def post_batch() -> Response:
        body = read_json_object()
        records = _parse_batch(body)
        try:
            outcome = client.store_many(records)
        except DeliveryError as error:
            raise _delivery_failure(error, records[0].record_id) from error
        return json_response(
            {
                "created": outcome.created,
                "duplicate": outcome.duplicate,
                "invalid": outcome.invalid,
                "results": outcome.results,
            }
        )

    return app


def _parse_batch(body: dict) -> list:
    unknown = {key: "unknown field" for key in body if key != "records"}
    records = body.get("records")
    if unknown or not isinstance(records, list):
        problems = dict(unknown)
        if not isinstance(records, list):
            problems["records"] = "must be a list of records"
        raise ApiError(422, "validation_failed", "The batch is invalid.", problems)
    if not 1 <= len(records) <= MAX_BATCH_RECORDS:
        raise ApiError(
            422,
            "validation_failed",
            "The batch is invalid.",
            {"records": f"must contain 1 to {MAX_BATCH_RECORDS} records"},
        )

    parsed = []
    problems = {}
    for index, item in enumerate(records):
        try:
            parsed.append(parse_record(item))
        except ValidationError as error:
            for field, problem in error.fields.items():
                problems[f"records[{index}].{field}"] = problem
    if problems:
        raise ApiError(422, "validation_failed", "Some records are invalid.", problems)
    return parsed


def _delivery_failure(error: DeliveryError, record_id: str) -> ApiError:
    logger.error("delivery failed record_id=%s: %s", record_id, error)
    if error.code == grpc.StatusCode.INVALID_ARGUMENT:
        return ApiError(
            422,
            "validation_failed",
            f"The grpc-server rejected the record: {error.details}",
            {"record": error.details},
        )
    return ApiError(
        503,
        f"grpc_{error.code.name.lower()}",
        f"The record could not be delivered to the grpc-server: {error}.",
    )
