"""CaseIngest client with a deadline on every call and retries of UNAVAILABLE."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from covid.v1 import ingest_pb2, ingest_pb2_grpc
from covid_common.perprocess import PerProcess
from covid_common.record import CaseRecord
from grpc_health.v1 import health_pb2, health_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["CaseIngest"].full_name
# UNAVAILABLE means the call did not reach a working server or storage failed
# before anything was counted, so the same record can be sent again.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 1.0
HEALTH_TIMEOUT_S = 1.0
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Reconnect quickly after the server restarts.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)


class DeliveryError(Exception):
    """A call that failed for good: `code` is the last gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str, attempts: int):
        super().__init__(f"{code.name} after {attempts} attempt(s): {details}")
        self.code = code
        self.details = details
        self.attempts = attempts


@dataclass(frozen=True)
class BatchOutcome:
    created: int
    duplicate: int
    invalid: int
    results: list[dict]


class CaseIngestClient:
    """Calls CaseIngest on one address; the channel is created per process."""

    def __init__(
        self,
        address: str,
        deadline_s: float,
        rng: random.Random | None = None,
    ):
        self._address = address
        self._deadline_s = deadline_s
        self._rng = rng or random.Random()
        self._channel = PerProcess(self._new_channel)

    def _new_channel(self) -> grpc.Channel:
        logger.info("opening gRPC channel to %s", self._address)
        return grpc.insecure_channel(self._address, options=CHANNEL_OPTIONS)

    def store(self, record: CaseRecord) -> bool:
        """Send one record; return True when the server stored it as new.

        Raises DeliveryError when the deadline passes or the server rejects it.
        """
        stub = ingest_pb2_grpc.CaseIngestStub(self._channel.get())
        request = ingest_pb2.StoreCaseRequest(record=to_proto(record))
        response = self._call_with_retries(stub.StoreCase, request, record.record_id)
        return response.created

    def store_many(self, records: Sequence[CaseRecord]) -> BatchOutcome:
        """Send records as one StoreCases stream; the whole batch is retried."""
        stub = ingest_pb2_grpc.CaseIngestStub(self._channel.get())
        requests = [ingest_pb2.StoreCaseRequest(record=to_proto(r)) for r in records]
        first_id = records[0].record_id if records else "-"
        response = self._call_with_retries(
            lambda batch, **kwargs: stub.StoreCases(iter(batch), **kwargs),
            requests,
            f"{first_id} (batch of {len(records)})",
        )
        return BatchOutcome(
            created=response.created,
            duplicate=response.duplicate,
            invalid=response.invalid,
            results=[
                {
                    "record_id": result.record_id,
                    "status": ingest_pb2.StoreCaseResult.Status.Name(result.status)
                    .removeprefix("STATUS_")
                    .lower(),
                    **({"error": result.error} if result.error else {}),
                }
                for result in response.results
            ],
        )

    def check_health(self) -> str | None:
        """Return None when the server reports SERVING, else the problem."""
        stub = health_pb2_grpc.HealthStub(self._channel.get())
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                timeout=HEALTH_TIMEOUT_S,
            )
        except grpc.RpcError as error:
            return f"health check failed: {error.code().name}"
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            return f"grpc-server reports {status}"
        return None

    def _call_with_retries(self, method, request, label: str):
        """Call until success, a non-retryable status or the overall deadline."""
        deadline = time.monotonic() + self._deadline_s
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeliveryError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"no reply within {self._deadline_s} s",
                    attempt - 1,
                )
            try:
                return method(request, timeout=remaining)
            except grpc.RpcError as error:
                code = error.code()
                if code not in RETRYABLE_CODES:
                    raise DeliveryError(code, error.details() or "", attempt) from error
                pause = self._backoff(attempt)
                if time.monotonic() + pause >= deadline:
                    raise DeliveryError(code, error.details() or "", attempt) from error
                logger.warning(
                    "retrying record_id=%s after %s (attempt %d, pause %.3f s)",
                    label,
                    code.name,
                    attempt,
                    pause,
                )
                time.sleep(pause)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: a random pause up to the exponential cap spreads retries
        # of many workers over time.
        cap = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
        return self._rng.uniform(0, cap)


def to_proto(record: CaseRecord) -> ingest_pb2.CaseRecord:
    return ingest_pb2.CaseRecord(**record.to_dict())
