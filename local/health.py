"""Health checks of the stack's programs, and the wait for a stage to become healthy."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pymongo
import pymongo.errors
import redis

from local.programs import CheckKind, HealthCheck, Program, StatePaths
from local.supervisor import Supervisor

# supervisord states in which a program will not come up without help.
FAILED_STATES = {"FATAL", "EXITED", "STOPPED", "UNKNOWN"}
LOG_TAIL_LINES = 40


class StackError(RuntimeError):
    """The stack could not start or stop; the message names what failed and why."""


class StackConflict(StackError):
    """Another stack uses the state directory, or a port is in use; nothing started."""


def check(health: HealthCheck) -> str | None:
    """Run one check; return None when it passes, else what went wrong."""
    try:
        if health.kind is CheckKind.HTTP:
            with urllib.request.urlopen(health.target, timeout=2) as response:
                return None if response.status == 200 else f"HTTP {response.status}"
        if health.kind is CheckKind.REDIS:
            client = redis.Redis.from_url(
                health.target, socket_timeout=2, socket_connect_timeout=2
            )
            try:
                client.ping()
            finally:
                client.close()
            return None
        with pymongo.MongoClient(
            health.target, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
        ) as client:
            client.admin.command("ping")
        return None
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (OSError, redis.RedisError, pymongo.errors.PyMongoError) as error:
        return f"{type(error).__name__}: {error}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last lines of a log file, indented for an error message."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"    (no log at {path})"
    tail = text.splitlines()[-lines:] or ["(empty)"]
    return "\n".join(f"    {line}" for line in tail)


def _report(program: Program, problem: str, paths: StatePaths) -> str:
    log_file = paths.log_file(program.name)
    return (
        f"{program.name} ({program.health.describe()}): {problem}\n"
        f"  last lines of {log_file}:\n{log_tail(log_file)}"
    )


def wait_healthy(
    programs: Sequence[Program],
    supervisor: Supervisor,
    paths: StatePaths,
    deadline: float,
    timeout_s: float,
) -> None:
    """Wait until every program runs and passes its check; raise StackError if not.

    A program that supervisord reports as failed stops the wait at once, without
    waiting for the deadline.
    """
    pending = {program.name: program for program in programs}
    problems: dict[str, str] = {}
    while pending:
        states = supervisor.states()
        for name, program in list(pending.items()):
            state = states.get(name)
            if state is not None and state.state in FAILED_STATES:
                raise StackError(
                    "a program of the local stack failed to start:\n"
                    + _report(program, f"supervisord state {state.state}", paths)
                )
            problem = check(program.health)
            if problem is None and (state is None or state.state != "RUNNING"):
                # supervisord counts a program as started only after startsecs.
                problem = f"supervisord state {state.state if state else 'unknown'}"
            if problem is None:
                del pending[name]
            else:
                problems[name] = problem
        if not pending:
            return
        if time.monotonic() > deadline:
            reports = [_report(p, problems[n], paths) for n, p in pending.items()]
            raise StackError(
                f"timed out after {timeout_s:.0f} s waiting for "
                + ", ".join(pending)
                + " to become healthy:\n"
                + "\n".join(reports)
            )
        time.sleep(0.2)
