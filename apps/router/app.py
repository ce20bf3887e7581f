"""Router service: POST /cases validates a case and forwards it to one path.

The record travels to the path's /cases/batch together with the other records
that wait for the same path at that moment (see router.coalesce).

Replies:
- 201 {"record_id", "path", "received_at"}: the path stored or published it.
- 200, the same plus "duplicate": true: the record_id was already stored (only
  the gRPC path can tell).
- 400 body not JSON or not an object, 413 body over 16 KiB, 415 not JSON,
  422 invalid fields (named in "fields").
- 502 the path service could not be reached or returned an unexpected status,
  503 the path service could not deliver (e.g. no Redis subscriber), 504 the
  path service did not respond within DOWNSTREAM_TIMEOUT_S.
POST /cases/batch takes many cases and returns one result per case (see router.batch).
"""

from __future__ import annotations

import logging
import random

from covid_common import metrics, names
from covid_common.config import RouterConfig, log_config
from covid_common.http import (
    DEFAULT_MAX_BODY_BYTES,
    ApiError,
    create_base_app,
    json_response,
    read_json_object,
    validation_error,
)
from covid_common.record import ValidationError, new_record, validate_case
from flask import Flask, Response, g
from werkzeug.exceptions import RequestEntityTooLarge

from router.batch import handle_batch, read_batch
from router.coalesce import Coalescer
from router.forward import Forwarder, PathPicker
from router.openapi import OPENAPI_ROUTE, build_spec

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES
# Rejection reasons (metric label) by HTTP status.
_REJECT_REASONS = {400: "bad_json", 413: "too_large", 415: "bad_content_type"}


def create_app(config: RouterConfig, rng: random.Random | None = None) -> Flask:
    """Build the router app; pass a seeded `rng` to make path choices repeatable."""
    log_config(logger, config)
    picker = PathPicker(config.route_weights, rng)
    forwarder = Forwarder(config.path_urls, config.downstream_timeout_s)
    coalescer = Coalescer(forwarder, config.path_urls, config.downstream_timeout_s)
    app = create_base_app(names.ROUTER, forwarder.check_ready, MAX_BODY_BYTES)
    spec = build_spec(MAX_BODY_BYTES)

    @app.get(OPENAPI_ROUTE)
    def openapi() -> Response:
        return json_response(spec)

    @app.post(names.CASES_ROUTE)
    def post_case() -> Response:
        case = _read_case()
        record = new_record(case, picker.pick())
        g.record_id = record.record_id

        # The coalescer counts routed records and downstream errors, and logs
        # each failed forward with its record_ids.
        result = coalescer.submit(record)
        if result["status"] not in (200, 201):
            raise ApiError(result["status"], result["error"], result["message"])
        body = {
            "record_id": record.record_id,
            "path": record.path,
            "received_at": record.received_at,
        }
        if result.get("duplicate"):
            body["duplicate"] = True
        return json_response(body, result["status"])

    @app.post(names.CASES_BATCH_ROUTE)
    def post_batch() -> Response:
        items = read_batch()
        return json_response(handle_batch(items, picker.pick, forwarder))

    return app


def _read_case():
    try:
        data = read_json_object()
    except ApiError as error:
        metrics.ROUTER_RECORDS_REJECTED.labels(
            _REJECT_REASONS.get(error.status, "bad_request")
        ).inc()
        raise
    except RequestEntityTooLarge:
        metrics.ROUTER_RECORDS_REJECTED.labels("too_large").inc()
        raise

    try:
        return validate_case(data)
    except ValidationError as error:
        metrics.ROUTER_RECORDS_REJECTED.labels("invalid").inc()
        raise validation_error(error) from error
