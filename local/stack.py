"""Start, stop and inspect one local stack: the Python API behind `python -m local`.

    stack = LocalStack(config)
    stack.start()
    ...
    report = stack.stop()

`stop` also works on a stack that another process started (`up`, then `down`),
because it finds supervisord through the state directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pymongo
import redis
from covid_common import names
from covid_common.logs import redact_url

from local import nginx
from local import supervisor as supervisor_conf
from local.config import DEFAULT_STATE_DIR, PORTS_ENV, StackConfig, busy_ports
from local.health import StackConflict, StackError, wait_healthy
from local.procs import ProcessId, descendants, is_alive, kill, wait_gone
from local.programs import (
    STOP_MARGIN_S,
    Program,
    Stage,
    StatePaths,
    build_programs,
    parallel_stop_bound_s,
    serial_stop_bound_s,
    uses_gunicorn,
    write_files,
)
from local.supervisor import RPC_ERRORS, ProgramState, Supervisor

log = logging.getLogger(__name__)

# Prefix of every Redis key the services write (see names.RedisKeys).
REDIS_KEY_PATTERN = "covid:*"
# Seconds supervisord gets to exit once its programs are stopped.
SUPERVISORD_EXIT_S = 10
# Seconds processes that left their program's process group get to exit after
# supervisord, before they are killed.
LEFTOVER_WAIT_S = 5
# Seconds to collect the exit status of a supervisord started by this object.
REAP_WAIT_S = 5


@dataclass(frozen=True)
class StopReport:
    # Processes of the stack that were running when the stop began.
    stopped: tuple[ProcessId, ...]
    # Processes still alive after supervisord exited; they were sent SIGKILL.
    killed: tuple[ProcessId, ...]


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.paths = StatePaths(config.state_dir)
        self.supervisor = Supervisor(self.paths)
        self._process: subprocess.Popen | None = None

    @property
    def programs(self) -> list[Program]:
        return build_programs(self.config)

    @property
    def launched(self) -> bool:
        """Whether this object started a supervisord that it has not stopped yet."""
        return self._process is not None

    def down_command(self) -> str:
        """Return the command that stops the stack of this state directory."""
        if self.paths.root == DEFAULT_STATE_DIR.resolve():
            return "`make local-down` (or `python -m local down`)"
        return f"`python -m local down --state-dir {self.paths.root}`"

    def start(
        self,
        reset_data: bool = False,
        timeout_s: float = 120,
        die_with_caller: bool = False,
    ) -> None:
        """Start every program stage by stage and wait until all are healthy.

        With `die_with_caller`, the stack stops when the calling process dies,
        even by SIGKILL. supervisord gets SIGTERM then and stops its programs one
        at a time, within serial_stop_bound_s(self.programs) seconds.

        With `reset_data`, the stack starts with no records and no Prometheus
        history. It drops the
        database of its own SecantusDB, or writes to a new database when
        MONGO_URL names an external server. It also deletes the services' Redis
        keys. Both happen after the stores are up and before any service creates
        its indexes.
        """
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
            self._check_free()
            self._start(reset_data, timeout_s, die_with_caller)
        log.info("the local stack is up (state in %s)", self.paths.root)

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the state directory while the stack starts.

        Two starts at once would both find no running supervisord, and the
        second would send its requests to the first one's socket. The kernel
        drops the lock when its holder exits, so a crash leaves none behind.
        """
        with self.paths.start_lock.open("w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackConflict(
                    f"another local stack is starting from {self.paths.root}; wait "
                    f"for it, or stop it with {self.down_command()}"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _check_free(self) -> None:
        """Raise StackConflict if a stack runs here or a port of this one is taken."""
        running = self.supervisor.running_pid()
        if running is not None:
            raise StackConflict(
                f"a local stack already runs from {self.paths.root} (supervisord "
                f"PID {running.pid}); stop it with {self.down_command()}"
            )
        busy = busy_ports(self.config.used_ports())
        if busy:
            listed = ", ".join(f"{name} {port}" for name, port in busy.items())
            example = next(iter(busy))
            raise StackConflict(
                f"ports already in use: {listed}. Stop what listens there or choose "
                f"other ports: set {PORTS_ENV}={example}=PORT,... for make, or pass "
                f"--port {example}=PORT to `python -m local`"
            )

    def _start(self, reset_data: bool, timeout_s: float, die_with_caller: bool) -> None:
        if reset_data and self.config.external_mongo_url:
            self.config = self.config.with_fresh_database()
            log.info("writing to the new database %s", self.config.mongo_db)

        programs = self.programs
        self._prepare(programs)
        if reset_data:
            # Old series would mix into queries about this run's metrics.
            shutil.rmtree(self.paths.prometheus_dir / "data", ignore_errors=True)
        self._process = self.supervisor.launch(die_with_parent=die_with_caller)
        deadline = time.monotonic() + timeout_s
        try:
            self.supervisor.wait_ready(self._process)
            for stage in Stage:
                stage_programs = [p for p in programs if p.stage is stage]
                for program in stage_programs:
                    self.supervisor.start(program.name)
                log.info("starting %s", ", ".join(p.name for p in stage_programs))
                wait_healthy(
                    stage_programs, self.supervisor, self.paths, deadline, timeout_s
                )
                if stage is Stage.STORES and reset_data:
                    self.reset_data()
        except BaseException:
            self.stop()
            raise

    def _prepare(self, programs: list[Program]) -> None:
        write_files(self.config)
        # nginx creates its temporary directories itself, but not their parent.
        (self.paths.nginx_dir / "tmp").mkdir(exist_ok=True)
        for service in self.config.services:
            if uses_gunicorn(service):
                # prometheus-client's multiprocess files must not outlive the
                # processes that wrote them, or old counts come back.
                metrics_dir = self.paths.metrics_dir(service)
                shutil.rmtree(metrics_dir, ignore_errors=True)
                metrics_dir.mkdir(parents=True)
        self.paths.supervisor_conf.write_text(
            supervisor_conf.render(programs, self.paths)
        )
        self.paths.stack_file.write_text(json.dumps(self.describe(), indent=2) + "\n")

    def describe(self) -> dict:
        """Return the stack's URLs and ports, without secrets."""
        urls = {
            "ingress": self.config.ingress_url,
            "prometheus": self.config.prometheus_url,
            "mongo": redact_url(self.config.mongo_url),
            "redis": redact_url(self.config.redis_url),
        }
        if self.config.service(names.LIVE.name):
            urls["live page"] = self.config.ingress_url + nginx.LIVE_PREFIX + "/"
        for service in self.config.services:
            urls[service.name] = self.config.service_url(service)
        return {
            "state_dir": str(self.paths.root),
            "mongo_db": self.config.mongo_db,
            "urls": urls,
            "ports": dict(self.config.ports),
            "services": [service.name for service in self.config.services],
        }

    def reset_data(self) -> None:
        """Drop the records of earlier runs from MongoDB and Redis."""
        if not self.config.external_mongo_url:
            with pymongo.MongoClient(self.config.mongo_url) as client:
                client.drop_database(self.config.mongo_db)
        client = redis.Redis.from_url(self.config.redis_url)
        try:
            keys = list(client.scan_iter(match=REDIS_KEY_PATTERN, count=1000))
            for start in range(0, len(keys), 500):
                client.unlink(*keys[start : start + 500])
        finally:
            client.close()
        log.info("emptied database %s and the Redis views", self.config.mongo_db)

    def status(self) -> list[ProgramState]:
        """Return the state of each program, or raise StackError if none runs."""
        if self.supervisor.running_pid() is None:
            raise StackError(f"no local stack runs from {self.paths.root}")
        return list(self.supervisor.states().values())

    def stop_bound_s(self) -> float:
        """Return the worst-case seconds of `stop` for this stack's programs.

        With the default stop waits this is 54 s for the programs, plus 20 s for
        supervisord and the clean-up (local.programs has the stop waits).
        """
        return (
            parallel_stop_bound_s(self.programs)
            + SUPERVISORD_EXIT_S
            + LEFTOVER_WAIT_S
            + REAP_WAIT_S
        )

    def stop(self) -> StopReport:
        """Stop every program, then supervisord; kill what is left.

        The programs of one priority stop together, the edge first and the
        stores last, so the stop takes at most stop_bound_s while supervisord
        replies to XML-RPC calls promptly. If supervisord does not reply, it
        gets SIGTERM and stops the programs one at a time.
        """
        supervisord = self.supervisor.running_pid()
        if supervisord is None:
            self._reap()
            return StopReport((), ())

        processes = [supervisord, *descendants(supervisord.pid)]
        exit_wait_s: float = SUPERVISORD_EXIT_S
        try:
            self._stop_programs()
            self.supervisor.request_shutdown()
        except RPC_ERRORS as error:
            log.warning(
                "supervisord rejected or did not reply to the stop requests (%s); "
                "sending SIGTERM",
                error,
            )
            os.kill(supervisord.pid, signal.SIGTERM)
            exit_wait_s = serial_stop_bound_s(self.programs)

        if wait_gone([supervisord], exit_wait_s):
            log.error("supervisord did not exit within %.0f s; killing it", exit_wait_s)
            kill([supervisord])
        self._reap()

        # supervisord stops each program's process group, so this finds only
        # processes that left their group.
        leftover = wait_gone(processes, LEFTOVER_WAIT_S)
        if leftover:
            log.error(
                "processes still running after supervisord exited, killing: %s",
                ", ".join(f"{p.pid} ({p.command})" for p in leftover),
            )
            kill(leftover)
        stopped = tuple(p for p in processes if p not in leftover)
        log.info("the local stack is stopped (%d processes)", len(processes))
        return StopReport(stopped, tuple(leftover))

    def _stop_programs(self) -> None:
        """Stop the programs one priority at a time, all of a priority together.

        supervisord sends SIGKILL after a program's stop wait, so each priority
        takes at most its longest stop wait plus STOP_MARGIN_S.
        """
        for tier in self.supervisor.stop_tiers():
            tier_names = [name for name, _ in tier]
            limit_s = max(wait for _, wait in tier) + STOP_MARGIN_S
            started = time.monotonic()
            self.supervisor.request_stop(tier_names)
            running = self.supervisor.wait_stopped(tier_names, limit_s)
            if running:
                # supervisord keeps stopping them during its shutdown.
                log.error(
                    "still running %.0f s after the stop request: %s",
                    limit_s,
                    ", ".join(running),
                )
            log.info(
                "stopped %s in %.1f s",
                ", ".join(tier_names),
                time.monotonic() - started,
            )

    def _reap(self) -> None:
        # A supervisord started by this object is its child: collect its status so
        # it does not stay behind as a zombie.
        if self._process is not None:
            try:
                self._process.wait(timeout=REAP_WAIT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def running_processes(self) -> list[ProcessId]:
        """Return supervisord and every process under it."""
        supervisord = self.supervisor.running_pid()
        if supervisord is None:
            return []
        return [p for p in [supervisord, *descendants(supervisord.pid)] if is_alive(p)]
