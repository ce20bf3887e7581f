"""Clients that each process must create for itself.

gRPC channels and connection pools must not cross a fork: a gunicorn worker
that used its parent's sockets would share them with its siblings. A
`PerProcess` holder creates its value on first use in each process and creates
a new one when it finds itself in a different process (a fork since then).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """A lazily created value, created again after a fork."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._value: T | None = None

    def get(self) -> T:
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    # The old value belongs to the parent process; drop it
                    # without closing, because closing could disturb the parent.
                    self._value = self._factory()
                    self._pid = pid
        return self._value  # type: ignore[return-value]

    def created(self) -> bool:
        """Return True when this process has created its value."""
        return self._pid == os.getpid()
