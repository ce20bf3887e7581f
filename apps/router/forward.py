"""Forwarding from the router to the path services, and the choice of path."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import urllib3
from covid_common import names
from covid_common.perprocess import PerProcess
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

logger = logging.getLogger(__name__)

# Readiness checks of the path services must finish well within the router's
# own probe timeout.
READY_TIMEOUT_S = 1.0
# Connections per path service kept open in each worker.
POOL_SIZE = 32


class PathPicker:
    """Picks a path at random in proportion to its weight; weight 0 never wins."""

    def __init__(self, weights: Mapping[str, int], rng: random.Random | None = None):
        self._choices = [
            (path, weight) for path, weight in weights.items() if weight > 0
        ]
        if not self._choices:
            raise ValueError("at least one path needs a weight above 0")
        self._total = sum(weight for _, weight in self._choices)
        self._rng = rng or random.Random()

    def pick(self) -> str:
        point = self._rng.random() * self._total
        for path, weight in self._choices:
            if point < weight:
                return path
            point -= weight
        # Only reached through float rounding at the top end.
        return self._choices[-1][0]


@dataclass(frozen=True)
class DownstreamReply:
    status: int
    body: dict


class DownstreamError(Exception):
    """A failed forward: `kind` is the metric label, `status` the router's reply."""

    def __init__(self, kind: str, status: int, code: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code
        self.message = message


class Forwarder:
    """Posts records to the path services over per-worker connection pools."""

    def __init__(self, path_urls: Mapping[str, str], timeout_s: float):
        self._urls = dict(path_urls)
        # Total caps connect plus read, so a forward never takes longer than
        # timeout_s; connecting gets at most 1 s of it.
        self._timeout = urllib3.Timeout(
            total=timeout_s, connect=min(1.0, timeout_s), read=timeout_s
        )
        self._pools = PerProcess(self._new_pool)

    def _new_pool(self) -> urllib3.PoolManager:
        return urllib3.PoolManager(
            num_pools=len(self._urls) + 1, maxsize=POOL_SIZE, retries=False
        )

    def forward(self, path: str, record: dict) -> DownstreamReply:
        """POST the record to the path's /cases route.

        Returns the reply for 200 and 201; raises DownstreamError otherwise.
        """
        return self._post(path, names.CASES_ROUTE, record)

    def forward_batch(self, path: str, records: list[dict]) -> DownstreamReply:
        """POST {"records": records} to the path's /cases/batch route.

        Returns the reply for 200 and 201; raises DownstreamError otherwise.
        """
        return self._post(path, names.CASES_BATCH_ROUTE, {"records": records})

    def _post(self, path: str, route: str, body: object) -> DownstreamReply:
        url = self._urls[path] + route
        try:
            response = self._pools.get().request(
                "POST",
                url,
                body=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            )
        except NewConnectionError as error:
            # Checked before TimeoutError: urllib3 2 derives NewConnectionError
            # (connection refused, unknown host) from ConnectTimeoutError.
            raise DownstreamError(
                "connection",
                502,
                "downstream_unreachable",
                f"The {path} path could not be reached: {error}.",
            ) from error
        except TimeoutError as error:
            raise DownstreamError(
                "timeout",
                504,
                "downstream_timeout",
                f"The {path} path did not respond within "
                f"{self._timeout.total} s: {error}.",
            ) from error
        except HTTPError as error:
            raise DownstreamError(
                "connection",
                502,
                "downstream_unreachable",
                f"The {path} path could not be reached: {error}.",
            ) from error

        body = _json_body(response.data)
        if response.status in (200, 201) and body is not None:
            return DownstreamReply(response.status, body)
        if response.status == 503:
            code = (body or {}).get("error", "downstream_unavailable")
            detail = (body or {}).get("message", "no reason given")
            raise DownstreamError(
                "unavailable",
                503,
                str(code),
                f"The {path} path could not deliver: {detail}",
            )
        raise DownstreamError(
            "bad_status",
            502,
            "bad_gateway",
            f"The {path} path returned HTTP {response.status}.",
        )

    def check_ready(self) -> dict[str, str]:
        """Return path -> problem for each enabled path whose /readyz fails."""
        failures = {}
        for path, base_url in self._urls.items():
            try:
                response = self._pools.get().request(
                    "GET",
                    base_url + names.READY_ROUTE,
                    timeout=urllib3.Timeout(total=READY_TIMEOUT_S),
                )
            except HTTPError as error:
                failures[path] = f"readiness check failed: {error}"
                continue
            if response.status != 200:
                failures[path] = f"readiness check returned HTTP {response.status}"
        return failures


def _json_body(data: bytes) -> dict | None:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
