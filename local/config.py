"""Settings of one local stack: ports, state directory, store URLs, service options.

The settings are read once from the environment and the command line into a
frozen `StackConfig`. Everything the stack writes (configuration files, logs,
store data, Locust output) lives under its state directory, so two stacks with
different state directories and ports can run side by side.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from covid_common import names
from covid_common.config import MONGO_DB_MAX_BYTES, mongo_database_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
APPS_DIR = REPO_ROOT / "apps"
DEFAULT_STATE_DIR = REPO_ROOT / "build" / "local"

# Environment variable of the runner itself: port overrides as "name=port,...".
PORTS_ENV = "LOCAL_PORTS"

INGRESS = "ingress"
MONGO = "mongo"
REDIS = "redis"
PROMETHEUS = "prometheus"
# The grpc-server's gRPC listener; its HTTP port is under the service's name.
GRPC_LISTENER = "grpc"

DEFAULT_PORTS: Mapping[str, int] = MappingProxyType(
    {
        INGRESS: 8000,
        MONGO: 27117,
        REDIS: 6479,
        PROMETHEUS: 9490,
        GRPC_LISTENER: names.GRPC_SERVER.grpc_port or 50051,
        **{service.name: service.http_port for service in names.ALL_SERVICES},
    }
)

DEFAULT_ROUTE_WEIGHTS = f"{names.PATH_GRPC}=50,{names.PATH_REDIS}=50"
# strftime format of the suffix that `run` adds to MONGO_DB on an external
# MongoDB server, so each run writes to a new database.
FRESH_DATABASE_SUFFIX = "_run_%Y%m%d%H%M%S"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Service options that the runner passes through unchanged when the user sets
# them; each service validates its own values at start-up.
PASSTHROUGH_ENV = (
    names.Env.GUNICORN_WORKERS,
    names.Env.GUNICORN_THREADS,
    names.Env.DOWNSTREAM_TIMEOUT_S,
    names.Env.GRPC_DEADLINE_S,
    names.Env.REDIS_MODE,
    names.Env.STREAM_CLAIM_IDLE_S,
)

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """Invalid runner setting: the message names the setting and the problem."""


@dataclass(frozen=True)
class StackConfig:
    """Settings of one local stack: state directory, ports, stores, service options."""

    state_dir: Path
    ports: Mapping[str, int]
    # Stores given by the user: the stack then starts no server of that kind.
    external_mongo_url: str | None = None
    external_redis_url: str | None = None
    mongo_db: str = names.MONGO_DB_DEFAULT
    route_weights: str = DEFAULT_ROUTE_WEIGHTS
    log_level: str = "INFO"
    service_env: Mapping[str, str] = field(default_factory=dict)
    services: tuple[names.Service, ...] = ()

    @property
    def mongo_url(self) -> str:
        if self.external_mongo_url:
            return self.external_mongo_url
        # retryWrites=false: SecantusDB slows down sharply after some thousands
        # of writes when pymongo's retryable writes are on.
        return f"mongodb://127.0.0.1:{self.ports[MONGO]}/?retryWrites=false"

    @property
    def redis_url(self) -> str:
        return self.external_redis_url or f"redis://127.0.0.1:{self.ports[REDIS]}/0"

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[INGRESS]}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[PROMETHEUS]}"

    def service_url(self, service: names.Service) -> str:
        return f"http://127.0.0.1:{self.ports[service.name]}"

    def service(self, name: str) -> names.Service | None:
        return next((s for s in self.services if s.name == name), None)

    def used_ports(self) -> dict[str, int]:
        """Return the ports this stack listens on, by name, skipping external stores."""
        used = {INGRESS: self.ports[INGRESS], PROMETHEUS: self.ports[PROMETHEUS]}
        if not self.external_mongo_url:
            used[MONGO] = self.ports[MONGO]
        if not self.external_redis_url:
            used[REDIS] = self.ports[REDIS]
        for service in self.services:
            used[service.name] = self.ports[service.name]
            if service.grpc_port is not None:
                used[GRPC_LISTENER] = self.ports[GRPC_LISTENER]
        return used

    def with_fresh_database(self) -> StackConfig:
        """Return a copy that writes to a new database named after the current time."""
        stamp = time.strftime(FRESH_DATABASE_SUFFIX, time.gmtime())
        return dataclasses.replace(self, mongo_db=f"{self.mongo_db}{stamp}")


def installed_services(apps_dir: Path = APPS_DIR) -> tuple[names.Service, ...]:
    """Return the services of names.ALL_SERVICES whose package under apps/ can start.

    A gunicorn service needs `<package>/wsgi.py`, any other `<package>/__main__.py`.
    """

    def entry_point(service: names.Service) -> Path:
        module = "wsgi.py" if service.command[0] == "gunicorn" else "__main__.py"
        return apps_dir / service.package / module

    return tuple(s for s in names.ALL_SERVICES if entry_point(s).is_file())


def parse_ports(text: str, source: str) -> dict[str, int]:
    """Parse "name=port,..." overrides; `source` names where the text came from."""
    ports: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_PORTS:
            known = ", ".join(DEFAULT_PORTS)
            raise ConfigError(
                f"{source}: invalid port override {item!r}: expected NAME=PORT with "
                f"NAME one of {known}"
            )
        try:
            port = int(value)
        except ValueError:
            port = -1
        if not 1 <= port <= 65535:
            raise ConfigError(
                f"{source}: invalid port {value!r} for {name}: expected 1-65535"
            )
        ports[name] = port
    return ports


def from_environment(
    environ: Mapping[str, str] | None = None,
    state_dir: Path = DEFAULT_STATE_DIR,
    port_overrides: Mapping[str, int] | None = None,
) -> StackConfig:
    """Build the settings from environment variables and command-line overrides."""
    environ = os.environ if environ is None else environ
    ports = dict(DEFAULT_PORTS)
    ports.update(parse_ports(environ.get(PORTS_ENV, ""), PORTS_ENV))
    ports.update(port_overrides or {})

    log_level = environ.get(names.Env.LOG_LEVEL, "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(
            f"{names.Env.LOG_LEVEL}: invalid level {log_level!r}: expected one of "
            + ", ".join(LOG_LEVELS)
        )

    external_mongo_url = environ.get(names.Env.MONGO_URL) or None
    mongo_db = _mongo_database(environ, external_mongo_url is not None)

    return StackConfig(
        state_dir=Path(state_dir).resolve(),
        ports=MappingProxyType(ports),
        external_mongo_url=external_mongo_url,
        external_redis_url=environ.get(names.Env.REDIS_URL) or None,
        mongo_db=mongo_db,
        route_weights=environ.get(names.Env.ROUTE_WEIGHTS) or DEFAULT_ROUTE_WEIGHTS,
        log_level=log_level,
        service_env=MappingProxyType(
            {key: environ[key] for key in PASSTHROUGH_ENV if environ.get(key)}
        ),
        services=installed_services(),
    )


def _mongo_database(environ: Mapping[str, str], external_mongo: bool) -> str:
    """Return MONGO_DB or the default; raise ConfigError if MongoDB would reject it.

    On an external server `run` appends FRESH_DATABASE_SUFFIX, so the name
    must leave room for it.
    """
    name = environ.get(names.Env.MONGO_DB, "").strip() or names.MONGO_DB_DEFAULT
    problem = mongo_database_problem(name)
    suffix_bytes = len(time.strftime(FRESH_DATABASE_SUFFIX, time.gmtime(0)))
    too_long = len(name.encode()) + suffix_bytes > MONGO_DB_MAX_BYTES
    if problem is None and external_mongo and too_long:
        problem = (
            f"with {names.Env.MONGO_URL} set, a run appends {suffix_bytes} "
            f"characters, so the name must be at most "
            f"{MONGO_DB_MAX_BYTES - suffix_bytes} bytes long"
        )
    if problem:
        raise ConfigError(f"{names.Env.MONGO_DB}: invalid value {name!r}: {problem}")
    return name


def free_port() -> int:
    """Return a TCP port that nothing listened on at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_free_ports(state_dir: Path, **overrides: object) -> StackConfig:
    """Return settings on free ports, so tests never clash with a running stack."""
    ports = {name: free_port() for name in DEFAULT_PORTS}
    config = from_environment(environ={}, state_dir=state_dir, port_overrides=ports)
    return dataclasses.replace(config, **overrides)


def busy_ports(ports: Mapping[str, int]) -> dict[str, int]:
    """Return the ports, by name, that another socket already listens on.

    The check binds the wildcard address, which conflicts with a listener on any
    local address. SO_REUSEADDR keeps a socket of an earlier run that waits in
    TIME_WAIT from counting as busy.
    """
    busy = {}
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                busy[name] = port
    return busy
