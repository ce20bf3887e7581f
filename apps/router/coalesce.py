"""Coalescing of single records into path batches, to cut the cost per record.

POST /cases hands its record to the worker's Coalescer and waits for the
record's result. Each path has one queue and one sender thread per process.
The sender takes every record waiting, up to PATH_CHUNK_RECORDS, and sends them
as one request to the path's /cases/batch. While a batch is in flight the next
records queue up, so batches grow with the load. A record that arrives when
nothing is in flight goes at once, alone: there is no timer to wait for.

In the runs of bench/run.py recorded in docs/benchmarks.md (2 cores), a path
service spent about 1 to 2 ms of CPU per HTTP request, so a request that
carries ten records costs each record a tenth of that.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError

from covid_common.perprocess import PerProcess
from covid_common.record import CaseRecord

from router.batch import PATH_CHUNK_RECORDS, Result, forward_chunk
from router.forward import Forwarder

logger = logging.getLogger(__name__)

_Item = tuple[CaseRecord, Future]


class Coalescer:
    """Sends single records to their paths in batches; one sender thread per path."""

    def __init__(self, forwarder: Forwarder, paths: Iterable[str], timeout_s: float):
        self._forwarder = forwarder
        self._paths = tuple(paths)
        # A record waits behind at most one batch in flight, and each forward
        # is bounded by timeout_s, so twice that plus a margin means the sender
        # is stuck.
        self._wait_s = 2 * timeout_s + 1
        self._queues = PerProcess(self._start_senders)

    def _start_senders(self) -> dict[str, queue.SimpleQueue]:
        queues: dict[str, queue.SimpleQueue] = {}
        for path in self._paths:
            queues[path] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._send_forever,
                args=(path, queues[path]),
                name=f"coalesce-{path}",
                daemon=True,
            )
            thread.start()
        return queues

    def submit(self, record: CaseRecord) -> Result:
        """Forward one record and return its result, as in a /cases/batch reply."""
        future: Future = Future()
        self._queues.get()[record.path].put((record, future))
        try:
            return future.result(timeout=self._wait_s)
        except FutureTimeoutError:
            return {
                "status": 504,
                "record_id": record.record_id,
                "path": record.path,
                "error": "downstream_timeout",
                "message": f"The {record.path} path did not respond within "
                f"{self._wait_s:g} s.",
            }

    def _send_forever(self, path: str, waiting: queue.SimpleQueue) -> None:
        while True:
            items: list[_Item] = [waiting.get()]
            while len(items) < PATH_CHUNK_RECORDS:
                try:
                    items.append(waiting.get_nowait())
                except queue.Empty:
                    break
            self._send(path, items)

    def _send(self, path: str, items: list[_Item]) -> None:
        chunk = [(index, record) for index, (record, _) in enumerate(items)]
        try:
            results = forward_chunk(path, chunk, self._forwarder)
        except Exception as error:  # noqa: BLE001 - the sender thread must go on
            logger.exception(
                "forwarding %d records to %s failed record_id=%s",
                len(items),
                path,
                items[0][0].record_id,
            )
            for _, future in items:
                future.set_exception(error)
            return
        for index, result in results:
            items[index][1].set_result(result)
