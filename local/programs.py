"""The processes of the local stack: how each starts and how to tell that it is up.

The stack starts in three stages and stops in reverse. The stores come first,
then the services in the order of names.PIPELINE_SERVICES (storage side before
the router), then the edge: nginx and Prometheus. So the ingress opens only when
the router behind it is ready. The programs of one stage stop together, and each
stage stops only after the stage in front of it is down.
"""

from __future__ import annotations

import enum
import shlex
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from covid_common import names

from local import nginx, prometheus
from local.config import (
    APPS_DIR,
    GRPC_LISTENER,
    INGRESS,
    MONGO,
    PROMETHEUS,
    REDIS,
    StackConfig,
)
from observability import rules as alert_rules


class Stage(enum.IntEnum):
    STORES = 1
    SERVICES = 2
    EDGE = 3


# gunicorn's graceful_timeout in the local stack: on SIGTERM its workers get this
# long to finish running requests. Routed requests give up after the router's
# downstream timeout (5 s by default), so 10 s lets them finish. It is shorter
# than the 20 s of covid_common.gunicorn_conf so that stopping the stack is quick.
GUNICORN_GRACEFUL_TIMEOUT_S = 10
# A service's stop wait covers its own grace period (gunicorn's graceful timeout
# above, or grpc-server's 10 s stop grace) plus 5 s for the process to exit.
SERVICE_STOP_WAIT_S = GUNICORN_GRACEFUL_TIMEOUT_S + 5
# SecantusDB is the store of record, so it gets more time to finish its writes.
SECANTUS_STOP_WAIT_S = 20
# supervisord checks stop waits once per pass of its main loop (1 s poll timeout
# in supervisor 4.3), so a SIGKILL can come up to a second late, and the exit must
# still be reaped. A bound allows this much per wait on top of the stop wait.
STOP_MARGIN_S = 3


class CheckKind(enum.Enum):
    MONGO = "mongo"  # a MongoDB ping succeeds
    REDIS = "redis"  # a Redis PING succeeds
    HTTP = "http"  # a GET returns 200


@dataclass(frozen=True)
class HealthCheck:
    kind: CheckKind
    target: str  # URL of the store or of the HTTP route

    def describe(self) -> str:
        return f"{self.kind.value} {self.target}"


@dataclass(frozen=True)
class Program:
    """One supervisord program of the stack."""

    name: str
    stage: Stage
    command: tuple[str, ...]
    directory: Path
    health: HealthCheck
    environment: Mapping[str, str] = field(default_factory=dict)
    # Seconds supervisord waits after SIGTERM before it sends SIGKILL. It is
    # longer than the program's own grace period, so a clean stop can finish.
    stop_wait_s: int = 10

    @property
    def priority(self) -> int:
        """supervisord priority: a lower priority stops later.

        Programs of one stage share a priority, and LocalStack.stop stops
        the programs of one priority together.
        """
        return int(self.stage) * 100

    def command_line(self) -> str:
        return shlex.join(self.command)


def parallel_stop_bound_s(programs: Iterable[Program]) -> int:
    """Return the worst-case seconds to stop `programs` one priority at a time.

    Each priority takes as long as its slowest program's stop wait, plus the
    margin. This is how LocalStack.stop stops a stack.
    """
    slowest: dict[int, int] = {}
    for program in programs:
        slowest[program.priority] = max(
            slowest.get(program.priority, 0), program.stop_wait_s
        )
    return sum(wait + STOP_MARGIN_S for wait in slowest.values())


def serial_stop_bound_s(programs: Iterable[Program]) -> int:
    """Return the worst-case seconds for supervisord's own shutdown of `programs`.

    On SIGTERM, supervisord 4.3 stops one process group at a time, and each
    program is a group of its own, so the stop waits add up. Equal priorities
    do not change that.
    """
    return sum(program.stop_wait_s + STOP_MARGIN_S for program in programs)


@dataclass(frozen=True)
class StatePaths:
    """Files and directories of a stack under its state directory."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log_file(self, program: str) -> Path:
        return self.logs / f"{program}.log"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def supervisor_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def supervisor_pid(self) -> Path:
        return self.root / "supervisord.pid"

    @property
    def start_lock(self) -> Path:
        return self.root / "start.lock"

    @property
    def secantus_data(self) -> Path:
        return self.root / "secantus-data"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def nginx_dir(self) -> Path:
        return self.root / "nginx"

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    @property
    def prometheus_rules(self) -> Path:
        return self.prometheus_dir / "rules.yml"

    def metrics_dir(self, service: names.Service) -> Path:
        return self.root / "metrics" / service.name

    @property
    def locust_dir(self) -> Path:
        return self.root / "locust"


def _venv_tool(name: str) -> str:
    """Return the path of a console script installed beside this Python."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def _service_command(service: names.Service) -> tuple[str, ...]:
    # The names module gives commands as the images run them; locally they run
    # with this virtual environment's interpreter and scripts.
    program, *args = service.command
    if program == "python":
        return (sys.executable, *args)
    return (_venv_tool(program), *args)


def uses_gunicorn(service: names.Service) -> bool:
    return service.command[0] == "gunicorn"


def service_environment(config: StackConfig, service: names.Service) -> dict[str, str]:
    """Return the environment variables one service gets in the local stack."""
    env = {
        "PYTHONPATH": str(APPS_DIR),
        "PYTHONUNBUFFERED": "1",
        names.Env.LOG_LEVEL: config.log_level,
        # Only nginx faces the network; the services are reached through it or
        # from this machine.
        names.Env.BIND_HOST: "127.0.0.1",
        names.Env.HTTP_PORT: str(config.ports[service.name]),
        names.Env.MONGO_URL: config.mongo_url,
        names.Env.MONGO_DB: config.mongo_db,
        names.Env.REDIS_URL: config.redis_url,
        names.Env.ROUTE_WEIGHTS: config.route_weights,
        names.Env.GRPC_SERVER_ADDR: f"127.0.0.1:{config.ports[GRPC_LISTENER]}",
        names.Env.GRPC_PATH_URL: config.service_url(names.GRPC_CLIENT),
        names.Env.REDIS_PATH_URL: config.service_url(names.REDIS_PUB),
        **config.service_env,
    }
    if service.grpc_port is not None:
        env[names.Env.GRPC_PORT] = str(config.ports[GRPC_LISTENER])
    # A fixed worker count wins over GUNICORN_WORKERS from the user's shell,
    # which is meant for the pipeline services.
    if service.gunicorn_workers is not None:
        env[names.Env.GUNICORN_WORKERS] = str(service.gunicorn_workers)
    # Only gunicorn's worker processes share metrics through files; a single
    # process with this variable set would switch to file-backed metrics too.
    if uses_gunicorn(service):
        metrics_dir = StatePaths(config.state_dir).metrics_dir(service)
        env[names.Env.PROMETHEUS_MULTIPROC_DIR] = str(metrics_dir)
        # gunicorn applies GUNICORN_CMD_ARGS after the configuration file, so
        # this overrides graceful_timeout there. SERVICE_STOP_WAIT_S covers it.
        env["GUNICORN_CMD_ARGS"] = f"--graceful-timeout {GUNICORN_GRACEFUL_TIMEOUT_S}"
    return env


def build_programs(config: StackConfig) -> list[Program]:
    """Return every program of the stack, in start order."""
    paths = StatePaths(config.state_dir)
    programs: list[Program] = []

    if not config.external_mongo_url:
        programs.append(
            Program(
                name="secantus",
                stage=Stage.STORES,
                command=(
                    sys.executable,
                    "-m",
                    "secantus",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(config.ports[MONGO]),
                    "--storage-path",
                    str(paths.secantus_data),
                    "--log-level",
                    "WARNING",
                ),
                directory=paths.root,
                health=HealthCheck(CheckKind.MONGO, config.mongo_url),
                stop_wait_s=SECANTUS_STOP_WAIT_S,
            )
        )
    if not config.external_redis_url:
        programs.append(
            Program(
                name="redis",
                stage=Stage.STORES,
                command=(
                    shutil.which("redis-server") or "redis-server",
                    str(paths.redis_dir / "redis.conf"),
                ),
                directory=paths.redis_dir,
                health=HealthCheck(CheckKind.REDIS, config.redis_url),
            )
        )

    for service in config.services:
        ready_url = config.service_url(service) + names.READY_ROUTE
        programs.append(
            Program(
                name=service.name,
                stage=Stage.SERVICES,
                command=_service_command(service),
                directory=APPS_DIR,
                health=HealthCheck(CheckKind.HTTP, ready_url),
                environment=service_environment(config, service),
                stop_wait_s=SERVICE_STOP_WAIT_S,
            )
        )

    programs.append(
        Program(
            name="nginx",
            stage=Stage.EDGE,
            command=(
                shutil.which("nginx") or "/usr/sbin/nginx",
                "-p",
                str(paths.nginx_dir),
                "-c",
                str(paths.nginx_dir / "nginx.conf"),
                # nginx opens this error log before it reads its configuration;
                # the default lives under /var/log.
                "-e",
                str(paths.logs / "nginx-error.log"),
            ),
            directory=paths.nginx_dir,
            health=HealthCheck(CheckKind.HTTP, config.ingress_url + nginx.STATUS_ROUTE),
        )
    )
    programs.append(
        Program(
            name="prometheus",
            stage=Stage.EDGE,
            command=(
                shutil.which("prometheus") or "prometheus",
                f"--config.file={paths.prometheus_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={paths.prometheus_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{config.ports[PROMETHEUS]}",
                "--storage.tsdb.retention.time=7d",
            ),
            directory=paths.prometheus_dir,
            health=HealthCheck(CheckKind.HTTP, config.prometheus_url + "/-/ready"),
        )
    )
    return programs


def redis_conf(config: StackConfig) -> str:
    """Return the redis-server configuration: loopback only, data in the state dir."""
    paths = StatePaths(config.state_dir)
    return "\n".join(
        [
            f"port {config.ports[REDIS]}",
            "bind 127.0.0.1",
            "protected-mode yes",
            # supervisord needs the server in the foreground and reads its output.
            "daemonize no",
            'logfile ""',
            f"dir {paths.redis_dir}",
            # The views and the stream of streams mode must outlive a restart
            # of redis-server. The append-only file is flushed to disk once a
            # second, and on a clean shutdown (SIGTERM) redis-server writes it
            # completely, so only a crash of the host loses up to a second.
            # `run` empties the stores before it starts the load.
            "appendonly yes",
            "appendfsync everysec",
            "save 60 1",
            "",
        ]
    )


def write_files(config: StackConfig) -> None:
    """Write the configuration files of nginx, redis-server and Prometheus."""
    paths = StatePaths(config.state_dir)
    for directory in (
        paths.logs,
        paths.redis_dir,
        paths.nginx_dir,
        paths.prometheus_dir,
        paths.locust_dir,
    ):
        directory.mkdir(parents=True, exist_ok=True)

    (paths.redis_dir / "redis.conf").write_text(redis_conf(config))
    (paths.nginx_dir / "nginx.conf").write_text(
        nginx.render(
            listen_port=config.ports[INGRESS],
            router_port=config.ports[names.ROUTER.name],
            state_dir=paths.root,
            live_port=(
                config.ports[names.LIVE.name]
                if config.service(names.LIVE.name)
                else None
            ),
        )
    )
    targets = {
        service.name: f"127.0.0.1:{config.ports[service.name]}"
        for service in config.services
    }
    # The same alert rules as on the cluster, so /alerts of the local
    # Prometheus shows them.
    paths.prometheus_rules.write_text(alert_rules.rules_yaml())
    (paths.prometheus_dir / "prometheus.yml").write_text(
        prometheus.render(
            prometheus.scrape_config(
                targets,
                prometheus_address=f"127.0.0.1:{config.ports[PROMETHEUS]}",
                rule_files=(str(paths.prometheus_rules),),
            )
        )
    )
