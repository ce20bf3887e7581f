"""Process-tree helpers on Linux's /proc: confirm that a stopped stack left nothing.

A process is identified by its PID and its start time (field 22 of
/proc/PID/stat), so a PID that the kernel reuses for a new process is never
taken for one of ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start_time: int
    command: str


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may contain spaces or parentheses.
    head, _, tail = text.rpartition(")")
    return [head.partition("(")[2], *tail.split()]


def identify(pid: int) -> ProcessId | None:
    """Return the identity of a running process, or None if it is gone or a zombie."""
    fields = _stat_fields(pid)
    # After the command: state, ppid, ..., start time is the 20th of the rest.
    if fields is None or fields[1] == "Z":
        return None
    return ProcessId(pid=pid, start_time=int(fields[20]), command=fields[0])


def is_alive(process: ProcessId) -> bool:
    """Return True while the same process (not a reused PID) runs and is no zombie."""
    current = identify(process.pid)
    return current is not None and current.start_time == process.start_time


def descendants(pid: int) -> list[ProcessId]:
    """Return every live descendant of `pid`, children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[2]), []).append(int(entry.name))

    found: list[ProcessId] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        identity = identify(child)
        if identity is not None:
            found.append(identity)
        queue.extend(children.get(child, []))
    return found


def wait_gone(processes: list[ProcessId], timeout_s: float) -> list[ProcessId]:
    """Wait until none of `processes` runs; return those still running at timeout."""
    deadline = time.monotonic() + timeout_s
    remaining = [p for p in processes if is_alive(p)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.1)
        remaining = [p for p in remaining if is_alive(p)]
    return remaining


def kill(processes: list[ProcessId]) -> None:
    """Send SIGKILL to each process that still is the one identified."""
    for process in processes:
        if is_alive(process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
