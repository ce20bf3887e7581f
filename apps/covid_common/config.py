"""Service configuration, read once at start-up from environment variables.

Each service has one frozen dataclass and one `load_*` function. A missing or
invalid variable raises ConfigError, whose message names the variable, the
value and what is expected; the entry points print it and exit. Variable names
come from `names.Env`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from covid_common import names
from covid_common.logs import redact_url

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDIS_MODES = ("pubsub", "streams")
DEFAULT_ROUTE_WEIGHTS = "grpc=50,redis=50"
# The grpc-client retries inside GRPC_DEADLINE_S, so the router's timeout is
# longer by default: a slow gRPC path shows up as a 503 from the grpc-client
# rather than as a router timeout.
DEFAULT_DOWNSTREAM_TIMEOUT_S = 5.0
DEFAULT_GRPC_DEADLINE_S = 3.0
# Long enough that a live consumer finishes a batch of 100 records first, even
# while MongoDB is slow; a shorter time only makes redelivery more frequent.
DEFAULT_STREAM_CLAIM_IDLE_S = 30.0
# Every interface, as a container needs so that its Service can reach it.
DEFAULT_BIND_HOST = "0.0.0.0"
# MongoDB rejects a database name that is empty, contains one of these
# characters or is 64 bytes or longer. Source: the MongoDB manual's "Limits and
# Thresholds" page, for Unix and Linux. pymongo 4.20 rejects the same characters.
MONGO_DB_INVALID_CHARACTERS = ("/", "\\", ".", " ", '"', "$", "\x00")
MONGO_DB_MAX_BYTES = 63

_Number = TypeVar("_Number", int, float)


class ConfigError(ValueError):
    """A missing or invalid environment variable."""

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        super().__init__(f"environment variable {variable} {problem}")


class EnvReader:
    """Typed access to environment variables; every error names the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def string(self, name: str, default: str | None = None) -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise ConfigError(name, "is required but not set")
            return default
        return value

    def integer(
        self,
        name: str,
        default: int,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        return self._number(name, default, int, minimum, maximum)

    def number(
        self,
        name: str,
        default: float,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        return self._number(name, default, float, minimum, maximum)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise ConfigError(
                name, f"is {value!r}; expected one of {', '.join(choices)}"
            )
        return value

    def ip_address(self, name: str, default: str) -> str:
        """Return an IPv4 or IPv6 address, such as 0.0.0.0 or ::1."""
        value = self.string(name, default)
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ConfigError(
                name, f"is {value!r}; expected an IP address such as 127.0.0.1"
            ) from None
        return value

    def mongo_database(self, name: str, default: str) -> str:
        """Return a MongoDB database name that MongoDB and pymongo accept."""
        value = self.string(name, default)
        problem = mongo_database_problem(value)
        if problem:
            raise ConfigError(name, f"is {value!r}; {problem}")
        return value

    def url(
        self, name: str, schemes: tuple[str, ...], default: str | None = None
    ) -> str:
        value = self.string(name, default)
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigError(
                name,
                f"is {redact_url(value)!r}; expected a URL like "
                f"{schemes[0]}://host:port",
            )
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as error:
            raise ConfigError(name, f"has an invalid port: {error}") from None
        return value

    def _number(
        self,
        name: str,
        default: _Number,
        kind: type[_Number],
        minimum: _Number | None,
        maximum: _Number | None,
    ) -> _Number:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = kind(text)
        except ValueError:
            raise ConfigError(
                name, f"is {text!r}; expected a {kind.__name__}"
            ) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(name, f"is {text!r}; expected a finite number")
        if minimum is not None and value < minimum:
            raise ConfigError(name, f"is {value}; expected at least {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigError(name, f"is {value}; expected at most {maximum}")
        return value


@dataclass(frozen=True)
class BaseConfig:
    log_level: str
    http_port: int


@dataclass(frozen=True)
class StorageConfig:
    mongo_url: str
    mongo_db: str
    redis_url: str


@dataclass(frozen=True)
class RouterConfig(BaseConfig):
    # path name -> weight; a path with weight 0 gets no records.
    route_weights: Mapping[str, int]
    # path name -> base URL of the path's HTTP service, for enabled paths only.
    path_urls: Mapping[str, str]
    downstream_timeout_s: float


@dataclass(frozen=True)
class GrpcClientConfig(BaseConfig):
    grpc_server_addr: str
    grpc_deadline_s: float


@dataclass(frozen=True)
class GrpcServerConfig(BaseConfig):
    grpc_port: int
    storage: StorageConfig
    max_workers: int = 16
    # Address of the gRPC and probe HTTP listeners.
    bind_host: str = DEFAULT_BIND_HOST


@dataclass(frozen=True)
class RedisPubConfig(BaseConfig):
    redis_url: str
    redis_mode: str


@dataclass(frozen=True)
class RedisSubConfig(BaseConfig):
    storage: StorageConfig
    redis_mode: str
    # Seconds between connection checks that refresh the heartbeat gauge.
    heartbeat_interval_s: float = 2.0
    # Streams mode: pending entries idle this long are claimed from dead consumers.
    claim_min_idle_s: float = DEFAULT_STREAM_CLAIM_IDLE_S
    # Address of the probe HTTP listener.
    bind_host: str = DEFAULT_BIND_HOST


def mongo_database_problem(name: str) -> str | None:
    """Return why MongoDB would reject `name` as a database name, or None."""
    if not name:
        return "expected a non-empty database name"
    for character in MONGO_DB_INVALID_CHARACTERS:
        if character in name:
            return f"a database name cannot contain {character!r}"
    if len(name.encode()) > MONGO_DB_MAX_BYTES:
        return f"a database name must be at most {MONGO_DB_MAX_BYTES} bytes long"
    return None


def listen_address(host: str, port: int) -> str:
    """Return "host:port" for a listener, with an IPv6 host in brackets."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_route_weights(text: str) -> dict[str, int]:
    """Parse "grpc=50,redis=50" into {"grpc": 50, "redis": 50}.

    A path left out gets weight 0. Raises ValueError describing the problem.
    """
    weights = dict.fromkeys(names.PATHS, 0)
    seen: set[str] = set()
    for item in text.split(","):
        path, separator, number = item.strip().partition("=")
        path = path.strip()
        if not separator:
            raise ValueError(f"entry {item.strip()!r} is not path=weight")
        if path not in names.PATHS:
            raise ValueError(
                f"unknown path {path!r}; paths are {', '.join(names.PATHS)}"
            )
        if path in seen:
            raise ValueError(f"path {path!r} is given twice")
        seen.add(path)
        try:
            weight = int(number.strip())
        except ValueError:
            raise ValueError(
                f"weight {number.strip()!r} of {path} is not an integer"
            ) from None
        if weight < 0:
            raise ValueError(f"weight {weight} of {path} is negative")
        weights[path] = weight
    if sum(weights.values()) == 0:
        raise ValueError("all weights are 0, so no path would get records")
    return weights


def load_router_config(environ: Mapping[str, str] | None = None) -> RouterConfig:
    env = EnvReader(environ)
    text = env.string(names.Env.ROUTE_WEIGHTS, DEFAULT_ROUTE_WEIGHTS)
    try:
        weights = parse_route_weights(text)
    except ValueError as error:
        raise ConfigError(names.Env.ROUTE_WEIGHTS, f"is {text!r}: {error}") from None

    url_variables = {
        names.PATH_GRPC: names.Env.GRPC_PATH_URL,
        names.PATH_REDIS: names.Env.REDIS_PATH_URL,
    }
    path_urls = {
        path: env.url(url_variables[path], ("http", "https")).rstrip("/")
        for path, weight in weights.items()
        if weight > 0
    }
    return RouterConfig(
        **_base(env, names.ROUTER),
        route_weights=weights,
        path_urls=path_urls,
        downstream_timeout_s=env.number(
            names.Env.DOWNSTREAM_TIMEOUT_S, DEFAULT_DOWNSTREAM_TIMEOUT_S, 0.05, 300.0
        ),
    )


def load_grpc_client_config(
    environ: Mapping[str, str] | None = None,
) -> GrpcClientConfig:
    env = EnvReader(environ)
    address = env.string(names.Env.GRPC_SERVER_ADDR)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            names.Env.GRPC_SERVER_ADDR, f"is {address!r}; expected host:port"
        )
    return GrpcClientConfig(
        **_base(env, names.GRPC_CLIENT),
        grpc_server_addr=address,
        grpc_deadline_s=env.number(
            names.Env.GRPC_DEADLINE_S, DEFAULT_GRPC_DEADLINE_S, 0.05, 300.0
        ),
    )


def load_grpc_server_config(
    environ: Mapping[str, str] | None = None,
) -> GrpcServerConfig:
    env = EnvReader(environ)
    return GrpcServerConfig(
        **_base(env, names.GRPC_SERVER),
        grpc_port=env.integer(
            names.Env.GRPC_PORT, names.GRPC_SERVER.grpc_port, 1, 65535
        ),
        storage=_storage(env),
        bind_host=env.ip_address(names.Env.BIND_HOST, DEFAULT_BIND_HOST),
    )


def load_redis_pub_config(environ: Mapping[str, str] | None = None) -> RedisPubConfig:
    env = EnvReader(environ)
    return RedisPubConfig(
        **_base(env, names.REDIS_PUB),
        redis_url=env.url(names.Env.REDIS_URL, ("redis", "rediss")),
        redis_mode=env.choice(names.Env.REDIS_MODE, "pubsub", REDIS_MODES),
    )


def load_redis_sub_config(environ: Mapping[str, str] | None = None) -> RedisSubConfig:
    env = EnvReader(environ)
    return RedisSubConfig(
        **_base(env, names.REDIS_SUB),
        storage=_storage(env),
        redis_mode=env.choice(names.Env.REDIS_MODE, "pubsub", REDIS_MODES),
        claim_min_idle_s=env.number(
            names.Env.STREAM_CLAIM_IDLE_S, DEFAULT_STREAM_CLAIM_IDLE_S, 0.1, 3600.0
        ),
        bind_host=env.ip_address(names.Env.BIND_HOST, DEFAULT_BIND_HOST),
    )


def _base(env: EnvReader, service: names.Service) -> dict:
    return {
        "log_level": env.choice(names.Env.LOG_LEVEL, "INFO", LOG_LEVELS),
        "http_port": env.integer(names.Env.HTTP_PORT, service.http_port, 1, 65535),
    }


def _storage(env: EnvReader) -> StorageConfig:
    return StorageConfig(
        mongo_url=env.url(names.Env.MONGO_URL, ("mongodb", "mongodb+srv")),
        mongo_db=env.mongo_database(names.Env.MONGO_DB, names.MONGO_DB_DEFAULT),
        redis_url=env.url(names.Env.REDIS_URL, ("redis", "rediss")),
    )


def log_config(logger: logging.Logger, config: object) -> None:
    """Log the effective configuration once, with passwords in URLs redacted."""
    logger.info("configuration %s", describe(config))


def describe(config: object) -> str:
    """Render a config dataclass as key=value pairs, passwords in URLs redacted."""
    items = []
    for key, value in vars(config).items():
        if hasattr(value, "__dataclass_fields__"):
            items.append(describe(value))
        elif isinstance(value, str) and "://" in value:
            items.append(f"{key}={redact_url(value)}")
        elif isinstance(value, Mapping):
            rendered = ",".join(
                f"{k}={redact_url(v) if isinstance(v, str) else v}"
                for k, v in value.items()
            )
            items.append(f"{key}={rendered}")
        else:
            items.append(f"{key}={value}")
    return " ".join(items)
