"""A value that is slow to compute, served from memory and refreshed in the background.

The MongoDB summary reads every stored case, so each process computes it at most
once at a time and serves the previous value meanwhile (stale-while-revalidate).
Only the first call, before any value exists, waits for the computation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RefreshingCache(Generic[T]):
    """The last result of `compute`, refreshed by one background thread at a time.

    A result is fresh for `ttl_s` seconds after its computation finished, or for
    as long as the computation took if that is longer: so a slow aggregation
    keeps the database busy at most half of the time, per process.
    """

    def __init__(
        self,
        compute: Callable[[], T],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._compute = compute
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # Held by whichever thread is computing; waiters of a first value queue on it.
        self._computing = threading.Lock()
        self._value: T | None = None
        self._has_value = False
        self._fresh_until = 0.0
        self._failures = 0

    def get(self) -> T:
        """Return the cached value, starting a refresh when it is stale.

        Raises what `compute` raises when no value was ever computed.
        """
        with self._lock:
            has_value = self._has_value
            value = self._value
            stale = self._clock() >= self._fresh_until
        if not has_value:
            return self._compute_first()
        if stale:
            self.refresh_in_background()
        return value  # type: ignore[return-value]

    def peek(self) -> T | None:
        """Return the cached value, or None, without computing or refreshing."""
        with self._lock:
            return self._value

    def refresh_in_background(self) -> bool:
        """Start a refresh thread unless one is running; return True if started."""
        if not self._computing.acquire(blocking=False):
            return False
        thread = threading.Thread(
            target=self._refresh_and_release, name="live-summary-refresh", daemon=True
        )
        thread.start()
        return True

    def _compute_first(self) -> T:
        with self._computing:
            with self._lock:
                if self._has_value:
                    return self._value  # type: ignore[return-value]
            self._refresh()
            with self._lock:
                return self._value  # type: ignore[return-value]

    def _refresh_and_release(self) -> None:
        try:
            self._refresh()
        except Exception:  # noqa: BLE001 - _refresh logged it; the old value stays
            pass
        finally:
            self._computing.release()

    def _refresh(self) -> None:
        started = self._clock()
        try:
            value = self._compute()
        except Exception as error:
            self._record_failure(error)
            raise
        finished = self._clock()
        with self._lock:
            self._value = value
            self._has_value = True
            self._fresh_until = finished + max(self._ttl_s, finished - started)
            failures, self._failures = self._failures, 0
        if failures:
            logger.info("summary refresh works again after %d failures", failures)

    def _record_failure(self, error: Exception) -> None:
        with self._lock:
            self._failures += 1
            failures = self._failures
            # Retry after the TTL, not at once: every request would start one.
            self._fresh_until = self._clock() + self._ttl_s
        # Log the first failure and then every 30th, so an outage logs a few lines.
        if failures == 1 or failures % 30 == 0:
            logger.warning("summary refresh failed (%d in a row): %r", failures, error)
