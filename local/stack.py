"""Start, stop and inspect one local stack: the Python API behind `python -m local`.

    stack = LocalStack(config)
    stack.start()
    ...
    report = stack.stop()

`stop` also works on a stack that another process started (`up`, then `down`),
because it finds supervisord through the state directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
import xmlrpc.client
from dataclasses import dataclass

import pymongo
import redis
from covid_common import names
from covid_common.logs import redact_url

from local import nginx
from local import supervisor as supervisor_conf
from local.config import StackConfig, busy_ports
from local.health import StackError, wait_healthy
from local.procs import ProcessId, descendants, is_alive, kill, wait_gone
from local.programs import (
    Program,
    Stage,
    StatePaths,
    build_programs,
    uses_gunicorn,
    write_files,
)
from local.supervisor import ProgramState, Supervisor

log = logging.getLogger(__name__)

# Prefix of every Redis key the services write (see names.RedisKeys).
REDIS_KEY_PATTERN = "covid:*"


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

    def start(self, reset_data: bool = False, timeout_s: float = 120) -> None:
        """Start every program stage by stage and wait until all are healthy.

        With `reset_data`, the stack starts with no records and no Prometheus
        history. It drops the
        database of its own SecantusDB, or writes to a new database when
        MONGO_URL names an external server. It also deletes the services' Redis
        keys. Both happen after the stores are up and before any service creates
        its indexes.
        """
        self.paths.root.mkdir(parents=True, exist_ok=True)
        running = self.supervisor.running_pid()
        if running is not None:
            raise StackError(
                f"a local stack already runs from {self.paths.root} (supervisord PID "
                f"{running.pid}); stop it with `python -m local down`"
            )
        busy = busy_ports(self.config.used_ports())
        if busy:
            listed = ", ".join(f"{name} {port}" for name, port in busy.items())
            raise StackError(
                f"ports already in use: {listed}. Stop what listens there or choose "
                "other ports with --port NAME=PORT (or LOCAL_PORTS=NAME=PORT,...)"
            )
        if reset_data and self.config.external_mongo_url:
            self.config = self.config.with_fresh_database()
            log.info("writing to the new database %s", self.config.mongo_db)

        programs = self.programs
        self._prepare(programs)
        if reset_data:
            # Old series would mix into queries about this run's metrics.
            shutil.rmtree(self.paths.prometheus_dir / "data", ignore_errors=True)
        self._process = self.supervisor.launch()
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
        log.info("the local stack is up (state in %s)", self.paths.root)

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

    def stop(self, timeout_s: float = 90) -> StopReport:
        """Stop every program and supervisord; kill what is left after `timeout_s`."""
        supervisord = self.supervisor.running_pid()
        if supervisord is None:
            self._reap()
            return StopReport((), ())

        processes = [supervisord, *descendants(supervisord.pid)]
        try:
            self.supervisor.request_shutdown()
        except (OSError, xmlrpc.client.Fault) as error:
            log.warning(
                "supervisord did not take the shutdown request (%s); sending SIGTERM",
                error,
            )
            os.kill(supervisord.pid, signal.SIGTERM)

        if wait_gone([supervisord], timeout_s):
            log.error("supervisord did not exit within %.0f s; killing it", timeout_s)
            kill([supervisord])
        self._reap()

        # supervisord stops each program's process group, so this finds only
        # processes that left their group.
        leftover = wait_gone(processes, 5)
        if leftover:
            log.error(
                "processes still running after supervisord exited, killing: %s",
                ", ".join(f"{p.pid} ({p.command})" for p in leftover),
            )
            kill(leftover)
        stopped = tuple(p for p in processes if p not in leftover)
        log.info("the local stack is stopped (%d processes)", len(processes))
        return StopReport(stopped, tuple(leftover))

    def _reap(self) -> None:
        # A supervisord started by this object is its child: collect its status so
        # it does not stay behind as a zombie.
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
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
