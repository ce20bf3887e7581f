"""Flask pieces every HTTP service shares.

`create_base_app` returns a Flask app with JSON errors (never HTML), the
/healthz, /readyz and /metrics routes, a body size limit, one log line per
request and the HTTP request metrics. Services add their own routes to it.

Error bodies: {"error": "<code>", "message": "<sentence>"} plus "fields"
(field name -> problem) on validation errors.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from covid_common import metrics, names
from covid_common.record import ValidationError

logger = logging.getLogger(__name__)

JSON_MIMETYPE = "application/json"
DEFAULT_MAX_BODY_BYTES = 16 * 1024
# Cases per POST /cases/batch, on the router and on both path services.
MAX_BATCH_RECORDS = 500
# About 1 KiB per record: a record's text fields are at most 100 characters.
MAX_BATCH_BODY_BYTES = MAX_BATCH_RECORDS * 1024
# Status of a body that parses as JSON but breaks the record rules.
VALIDATION_STATUS = 422
# Routes whose requests are logged at DEBUG: probes and scrapes arrive every few
# seconds and would drown the request log.
QUIET_ROUTES = frozenset({names.HEALTH_ROUTE, names.READY_ROUTE, names.METRICS_ROUTE})

# Error codes for the HTTP errors that Flask and werkzeug raise themselves.
_HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# A readiness check returns the failing dependencies: name -> problem.
ReadyCheck = Callable[[], Mapping[str, str]]


class ApiError(Exception):
    """An error the API returns as JSON with `status`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields) if fields is not None else None


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=JSON_MIMETYPE)


def error_response(
    status: int, code: str, message: str, fields: Mapping[str, str] | None = None
) -> Response:
    body: dict[str, object] = {"error": code, "message": message}
    if fields is not None:
        body["fields"] = dict(fields)
    return json_response(body, status)


def read_json_object() -> dict:
    """Return the request body as a dict, or raise ApiError naming the problem.

    415 unless the body is JSON, 413 over the app's size limit, 400 when it is
    not valid UTF-8 JSON, is not an object, nests deeper than orjson's limit of
    1024 levels or repeats a key. Every error names the bad part in "fields".
    """
    data = read_json()
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "invalid_json",
            "Request body must be a JSON object.",
            {"body": "must be a JSON object"},
        )
    return data


def read_json() -> object:
    """Return the request body parsed as any JSON value; errors as read_json_object."""
    if request.mimetype != JSON_MIMETYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be {JSON_MIMETYPE}, got {request.mimetype or 'none'}.",
            {"Content-Type": f"must be {JSON_MIMETYPE}"},
        )
    limit = request.max_content_length
    # get_data raises RequestEntityTooLarge when Content-Length is over the
    # limit. A chunked body has no Content-Length, and werkzeug 3 stops reading
    # it at the limit without an error, so a body that fills the limit is
    # treated as too large rather than parsed cut short.
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise _too_large(limit) from None
    if limit is not None and request.content_length is None and len(body) >= limit:
        raise _too_large(limit)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(
            400,
            "invalid_json",
            f"Request body is not valid JSON: {error}.",
            {"body": f"is not valid JSON: {error}"},
        ) from None
    _reject_duplicate_keys(body)
    return data


def _too_large(limit: int | None) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The body is larger than the limit of {limit} bytes.",
        {"body": f"must be at most {limit} bytes"},
    )


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _reject_duplicate_keys(body: bytes) -> None:
    """Raise a 400 ApiError when any object in the body repeats a key.

    orjson keeps the last of repeated keys without telling, so a body such as
    {"age": 5, "age": 500} would be read as one of its two meanings. The
    standard json parser reports the pairs in order, which finds repeats. The
    body already parsed with orjson, so it is valid UTF-8 JSON here.
    """
    try:
        json.loads(body, object_pairs_hook=_unique_object)
    except _DuplicateKeyError as error:
        raise ApiError(
            400,
            "invalid_json",
            f"Request body repeats the key {error.key!r}.",
            {error.key: "is given more than once"},
        ) from None
    except RecursionError:
        # Python's parser stops at its recursion limit (about 1000 levels),
        # a little below orjson's.
        raise ApiError(
            400,
            "invalid_json",
            "Request body nests too deeply.",
            {"body": "nests too deeply"},
        ) from None


def validation_error(error: ValidationError) -> ApiError:
    return ApiError(
        VALIDATION_STATUS,
        "validation_failed",
        "The record is invalid; see fields for each problem.",
        error.fields,
    )


def create_base_app(
    service: names.Service,
    ready_check: ReadyCheck,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Flask:
    """Build the shared Flask app of `service`; `ready_check` backs /readyz."""
    app = Flask(service.package)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    _register_errors(app)
    _register_observability(app, service.name)
    _register_probes(app, ready_check)
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.fields)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_ERROR_CODES.get(status, "http_error")
        return error_response(status, code, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        logger.exception(
            "unhandled error on %s %s record_id=%s",
            request.method,
            request.path,
            g.get("record_id", "-"),
        )
        return error_response(
            500, "internal_error", "The server failed to handle the request."
        )


def _register_observability(app: Flask, service_name: str) -> None:
    @app.before_request
    def start_timer() -> None:
        g.start_time = time.perf_counter()

    @app.after_request
    def log_and_count(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("start_time", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.HTTP_REQUESTS.labels(
            service_name, route, request.method, str(response.status_code)
        ).inc()
        metrics.HTTP_REQUEST_DURATION.labels(
            service_name, route, request.method
        ).observe(elapsed)
        level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
        logger.log(
            level,
            "%s %s %d %.1fms record_id=%s",
            request.method,
            request.path,
            response.status_code,
            elapsed * 1000,
            g.get("record_id", "-"),
        )
        return response


def _register_probes(app: Flask, ready_check: ReadyCheck) -> None:
    @app.get(names.HEALTH_ROUTE)
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get(names.READY_ROUTE)
    def readyz() -> Response:
        failures = ready_check()
        if failures:
            return json_response(
                {"status": "not_ready", "failures": dict(failures)}, 503
            )
        return json_response({"status": "ready"})

    @app.get(names.METRICS_ROUTE)
    def metrics_route() -> Response:
        body, content_type = metrics.render_metrics()
        return Response(body, content_type=content_type)
