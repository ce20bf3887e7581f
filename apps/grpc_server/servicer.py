"""CaseIngest servicer: checks each record and stores it through Storage."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator

import grpc
from covid.v1 import ingest_pb2, ingest_pb2_grpc
from covid_common import metrics, names
from covid_common.record import (
    RECORD_FIELDS,
    CaseRecord,
    ValidationError,
    parse_record,
)
from covid_common.storage import Storage, StorageError

logger = logging.getLogger(__name__)

Status = ingest_pb2.StoreCaseResult.Status
# Records per StoreCases call; a longer stream is rejected before storing.
MAX_BATCH_RECORDS = 1000


def record_from_proto(message: ingest_pb2.CaseRecord) -> CaseRecord:
    """Check a CaseRecord message with the record rules; raise ValidationError."""
    # Proto3 strings default to "" and numbers to 0, so an unset field fails
    # the record rules as empty or invalid rather than as missing.
    data = {field: getattr(message, field) for field in RECORD_FIELDS}
    return parse_record(data)


def _observed(method: str) -> Callable:
    """Record call count by status code and duration for a servicer method."""

    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(self, request, context: grpc.ServicerContext):
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return function(self, request, context)
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                metrics.GRPC_SERVER_REQUESTS.labels(method, code.name).inc()
                metrics.GRPC_SERVER_REQUEST_DURATION.labels(method).observe(
                    time.perf_counter() - start
                )

        return wrapper

    return decorate


class CaseIngestServicer(ingest_pb2_grpc.CaseIngestServicer):
    """Stores records in `storage`; UNAVAILABLE on storage failure so clients retry."""

    def __init__(self, storage: Storage, path: str = names.PATH_GRPC):
        self._storage = storage
        self._path = path

    @_observed("StoreCase")
    def StoreCase(  # noqa: N802 - method name fixed by the proto
        self, request: ingest_pb2.StoreCaseRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.StoreCaseResponse:
        record_id = request.record.record_id
        try:
            record = record_from_proto(request.record)
        except ValidationError as error:
            logger.warning("rejected record_id=%s: %s", record_id or "-", error)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

        try:
            created = self._storage.store(record, self._path)
        except StorageError as error:
            logger.error("store failed record_id=%s: %s", record_id, error)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"storage failed: {error.store}")

        logger.debug("stored record_id=%s created=%s", record_id, created)
        return ingest_pb2.StoreCaseResponse(record_id=record.record_id, created=created)

    @_observed("StoreCases")
    def StoreCases(  # noqa: N802 - method name fixed by the proto
        self,
        request_iterator: Iterator[ingest_pb2.StoreCaseRequest],
        context: grpc.ServicerContext,
    ) -> ingest_pb2.StoreCasesResponse:
        results: list[ingest_pb2.StoreCaseResult] = []
        valid: list[tuple[int, CaseRecord]] = []
        for request in request_iterator:
            if len(results) >= MAX_BATCH_RECORDS:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"batch exceeds {MAX_BATCH_RECORDS} records; send smaller batches",
                )
            try:
                record = record_from_proto(request.record)
            except ValidationError as error:
                logger.warning(
                    "rejected record_id=%s in batch: %s",
                    request.record.record_id or "-",
                    error,
                )
                results.append(
                    ingest_pb2.StoreCaseResult(
                        record_id=request.record.record_id,
                        status=Status.STATUS_INVALID,
                        error=str(error),
                    )
                )
                continue
            valid.append((len(results), record))
            results.append(ingest_pb2.StoreCaseResult(record_id=record.record_id))

        try:
            stored = self._storage.store_many(
                [record for _, record in valid], self._path
            )
        except StorageError as error:
            logger.error("batch store failed: %s", error)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"storage failed: {error.store}")

        for (index, _), result in zip(valid, stored, strict=True):
            created = result.created
            results[index].status = (
                Status.STATUS_CREATED if created else Status.STATUS_DUPLICATE
            )
        return ingest_pb2.StoreCasesResponse(
            created=sum(r.status == Status.STATUS_CREATED for r in results),
            duplicate=sum(r.status == Status.STATUS_DUPLICATE for r in results),
            invalid=sum(r.status == Status.STATUS_INVALID for r in results),
            results=results,
        )
