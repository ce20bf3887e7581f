"""POST /cases/batch on the router: many cases in one request, one result per item.

The body is a JSON array of cases, or {"records": [...]}, with 1 to
MAX_BATCH_RECORDS items and at most MAX_BATCH_BODY_BYTES. Each item is
validated like the body of POST /cases. Each valid item gets its record_id,
received_at and a path picked by the weights, as a single record would. The
valid items are then sent to each path's /cases/batch in chunks of at most
PATH_CHUNK_RECORDS.

Reply 200 {"accepted", "rejected", "failed", "results"} with one result per
item, in request order:
- {"status": 201, "record_id", "path", "received_at"}: stored or published.
- the same with "status": 200 and "duplicate": true: the record_id was already
  stored (only the gRPC path can tell), or an earlier item of this batch has
  the same record_id.
- {"status": 422, "error": "validation_failed", "message", "fields"}: invalid.
- {"status": 502, 503 or 504, "record_id", "path", "error", "message"}: the
  path failed for the item's chunk. The item may still have been stored, so a
  client resends it with the same record_id.
The whole request fails with 415 (not JSON), 400 (invalid JSON or neither an
array nor an object with "records"), 413 (body or item count over the limit)
or 422 (no items). A single case object sent here gets a 400 that points to
POST /cases.

A record_id that repeats within one batch is a duplicate, as a repeated
record_id is for POST /cases. Only the first valid item with it is routed and
stored, and the other fields of later items are ignored even where they
differ. A later item gets the first item's result with status 200 and
"duplicate": true when the first was accepted. When the first item's path
failed, a later item gets the same 5xx failure, so the client resends the
record_id. Later items are never sent down a path and use no path pick.
Items without a record_id never repeat, because each gets its own uuid4.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from covid_common import metrics
from covid_common.http import (
    MAX_BATCH_BODY_BYTES,
    MAX_BATCH_RECORDS,
    ApiError,
    read_json,
)
from covid_common.record import (
    CaseRecord,
    ValidationError,
    new_record,
    validate_case,
)
from flask import g, request

from router.forward import DownstreamError, DownstreamReply, Forwarder

logger = logging.getLogger(__name__)

# Records per request to a path service. Chunks stay far below the path
# services' own limits (500 records, 500 KiB) even after the router adds its
# fields, and bound the work lost when one chunk fails.
PATH_CHUNK_RECORDS = 100

Result = dict[str, Any]


def read_batch() -> list:
    """Return the items of the request body, or raise ApiError for the whole batch."""
    request.max_content_length = MAX_BATCH_BODY_BYTES
    try:
        body = read_json()
    except ApiError as error:
        reason = {413: "too_large", 415: "bad_content_type"}.get(
            error.status, "bad_json"
        )
        metrics.ROUTER_RECORDS_REJECTED.labels(reason).inc()
        raise

    if isinstance(body, dict) and "records" not in body:
        # Most often a single case sent to the wrong route.
        raise _reject(
            400,
            "bad_json",
            'The body is a JSON object without "records". Send a JSON array of '
            'cases or {"records": [...]}, or send a single case to POST /cases.',
            {"body": 'must be a JSON array of cases or {"records": [...]}'},
        )
    items = body.get("records") if isinstance(body, dict) else body
    if isinstance(body, dict) and set(body) - {"records"}:
        unknown = {str(key): "unknown field" for key in body if key != "records"}
        raise _reject(400, "bad_json", "The batch has unknown fields.", unknown)
    if not isinstance(items, list):
        raise _reject(
            400,
            "bad_json",
            'The body must be a JSON array of cases or {"records": [...]}.',
            {"records": "must be a list of cases"},
        )
    if not items:
        raise _reject(
            422,
            "invalid",
            "The batch contains no cases.",
            {"records": f"must contain 1 to {MAX_BATCH_RECORDS} cases"},
        )
    if len(items) > MAX_BATCH_RECORDS:
        raise _reject(
            413,
            "too_large",
            f"The batch contains {len(items)} cases; the limit is "
            f"{MAX_BATCH_RECORDS}. Send smaller batches.",
            {"records": f"must contain at most {MAX_BATCH_RECORDS} cases"},
        )
    return items


def handle_batch(
    items: Sequence[object], pick_path: Callable[[], str], forwarder: Forwarder
) -> dict[str, Any]:
    """Validate, route and forward `items`; return the reply with per-item results."""
    results: list[Result | None] = [None] * len(items)
    by_path: dict[str, list[tuple[int, CaseRecord]]] = {}
    # Index of the first valid item with each client record_id, and the
    # indexes of the later items that repeat it.
    first_index: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for index, item in enumerate(items):
        try:
            case = validate_case(item)
        except ValidationError as error:
            results[index] = {
                "status": 422,
                "error": "validation_failed",
                "message": "The record is invalid; see fields for each problem.",
                "fields": error.fields,
            }
            continue
        if case.record_id is not None:
            if case.record_id in first_index:
                repeats[index] = first_index[case.record_id]
                continue
            first_index[case.record_id] = index
        record = new_record(case, pick_path())
        by_path.setdefault(record.path, []).append((index, record))

    rejected = sum(result is not None for result in results)
    if rejected:
        metrics.ROUTER_RECORDS_REJECTED.labels("invalid").inc(rejected)
    routed = [record for entries in by_path.values() for _, record in entries]
    if routed:
        g.record_id = f"{routed[0].record_id} (batch of {len(items)})"

    for path, entries in by_path.items():
        for start in range(0, len(entries), PATH_CHUNK_RECORDS):
            chunk = entries[start : start + PATH_CHUNK_RECORDS]
            for index, result in forward_chunk(path, chunk, forwarder):
                results[index] = result
    for index, first in repeats.items():
        results[index] = _repeat_result(results[first])

    accepted = sum(result["status"] in (200, 201) for result in results)
    return {
        "accepted": accepted,
        "rejected": rejected,
        "failed": len(results) - accepted - rejected,
        "results": results,
    }


def forward_chunk(
    path: str, chunk: list[tuple[int, CaseRecord]], forwarder: Forwarder
) -> list[tuple[int, Result]]:
    """Send records to one path; return (index, result) for each (index, record).

    A lone record goes to the path's /cases, which costs the path service less
    than a batch of one; more go to /cases/batch.
    """
    records = [record for _, record in chunk]
    try:
        if len(records) == 1:
            reply = forwarder.forward(path, records[0].to_dict())
            duplicate = reply.status == 200 and reply.body.get("duplicate")
            statuses: list[str | None] = ["duplicate" if duplicate else "created"]
        else:
            reply = forwarder.forward_batch(path, [r.to_dict() for r in records])
            statuses = _item_statuses(reply, records)
    except DownstreamError as error:
        metrics.ROUTER_DOWNSTREAM_ERRORS.labels(path, error.kind).inc()
        logger.warning(
            "forward failed path=%s records=%d record_id=%s kind=%s: %s",
            path,
            len(records),
            records[0].record_id,
            error.kind,
            error.message,
        )
        return [
            (index, _failure(record, error.status, error.code, error.message))
            for index, record in chunk
        ]

    results = []
    routed = 0
    for (index, record), status in zip(chunk, statuses, strict=True):
        if status is None:
            results.append(
                (
                    index,
                    _failure(
                        record,
                        502,
                        "bad_gateway",
                        f"The {path} path returned no result for this record.",
                    ),
                )
            )
            continue
        routed += 1
        result: Result = {
            "status": 200 if status == "duplicate" else 201,
            "record_id": record.record_id,
            "path": record.path,
            "received_at": record.received_at,
        }
        if status == "duplicate":
            result["duplicate"] = True
        results.append((index, result))
    if routed:
        metrics.ROUTER_RECORDS_ROUTED.labels(path).inc(routed)
    return results


def _item_statuses(
    reply: DownstreamReply, records: Sequence[CaseRecord]
) -> list[str | None]:
    """Return "created", "duplicate" or None (no usable result) per record.

    The grpc-client returns one result per record in request order; redis-pub
    returns the published record_ids.
    """
    if "results" in reply.body:
        items = reply.body["results"]
        if not isinstance(items, list) or len(items) != len(records):
            return [None] * len(records)
        statuses: list[str | None] = []
        for item, record in zip(items, records, strict=True):
            matches = isinstance(item, dict) and item.get("record_id") == (
                record.record_id
            )
            status = item.get("status") if matches else None
            statuses.append(status if status in ("created", "duplicate") else None)
        return statuses
    published = set(reply.body.get("record_ids") or ())
    return ["created" if record.record_id in published else None for record in records]


def _repeat_result(first: Result) -> Result:
    """Return the result of an item whose record_id an earlier item has."""
    if first["status"] not in (200, 201):
        return dict(first)
    return {**first, "status": 200, "duplicate": True}


def _failure(record: CaseRecord, status: int, code: str, message: str) -> Result:
    return {
        "status": status,
        "record_id": record.record_id,
        "path": record.path,
        "error": code,
        "message": message,
    }


def _reject(status: int, reason: str, message: str, fields: dict[str, str]) -> ApiError:
    metrics.ROUTER_RECORDS_REJECTED.labels(reason).inc()
    code = {400: "invalid_json", 413: "payload_too_large"}.get(
        status, "validation_failed"
    )
    return ApiError(status, code, message, fields)
