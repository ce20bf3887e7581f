"""Names that the services, the local stack and the Pulumi program share.

Every service name, port, environment variable, Redis key and MongoDB name that
more than one part of the project uses is defined here once. The infra code and
the local stack import this module instead of repeating the strings, so a rename
here reaches the Deployments, the local processes and the tests together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """One deployable process: its name, how it starts and which ports it listens on."""

    name: str
    # Python package under apps/ that contains the service's code.
    package: str
    # Command that starts the service, relative to the image's working directory
    # (apps/, which is also PYTHONPATH). Gunicorn services read their listen
    # address from the gunicorn config, which reads HTTP_PORT.
    command: tuple[str, ...]
    # Port of the HTTP server: the API for web services; health, readiness and
    # metrics for every service.
    http_port: int
    grpc_port: int | None = None
    # Fixed number of gunicorn worker processes, or None for the deployment's
    # default. GUNICORN_WORKERS is set to it on the cluster and in the local stack.
    gunicorn_workers: int | None = None

    @property
    def image_name(self) -> str:
        return f"covid-{self.name}"


def _gunicorn(package: str) -> tuple[str, ...]:
    return (
        "gunicorn",
        "--config",
        "python:covid_common.gunicorn_conf",
        f"{package}.wsgi:app",
    )


ROUTER = Service("router", "router", _gunicorn("router"), http_port=8080)
GRPC_CLIENT = Service(
    "grpc-client", "grpc_client", _gunicorn("grpc_client"), http_port=8081
)
REDIS_PUB = Service("redis-pub", "redis_pub", _gunicorn("redis_pub"), http_port=8082)
# The subscriber and the gRPC server are not web services: their HTTP port
# serves only health, readiness and metrics.
REDIS_SUB = Service(
    "redis-sub", "redis_sub", ("python", "-m", "redis_sub"), http_port=8083
)
GRPC_SERVER = Service(
    "grpc-server",
    "grpc_server",
    ("python", "-m", "grpc_server"),
    http_port=8084,
    grpc_port=50051,
)
# One worker with several threads: each worker process caches and refreshes its
# own summary of MongoDB, so every extra worker adds the same reads again.
LIVE = Service("live", "live", _gunicorn("live"), http_port=8085, gunicorn_workers=1)

# The services of the ingestion pipeline, in the order the local stack starts them
# (storage side first, so a path is ready before traffic can reach it).
PIPELINE_SERVICES = (GRPC_SERVER, REDIS_SUB, GRPC_CLIENT, REDIS_PUB, ROUTER)
ALL_SERVICES = PIPELINE_SERVICES + (LIVE,)

# HTTP routes every service serves on its http_port.
HEALTH_ROUTE = "/healthz"  # liveness: the process runs and can respond
READY_ROUTE = "/readyz"  # readiness: its dependencies respond too
METRICS_ROUTE = "/metrics"

# The router's public API, and the route on each path service that the router calls.
CASES_ROUTE = "/cases"
CASES_BATCH_ROUTE = "/cases/batch"

# Path names: the value of a record's "path" field, of the router's weights and of
# the "path" label on metrics.
PATH_GRPC = "grpc"
PATH_REDIS = "redis"
PATHS = (PATH_GRPC, PATH_REDIS)


class Env:
    """Environment variable names; each service reads its own once, at start-up."""

    LOG_LEVEL = "LOG_LEVEL"
    # IP address the HTTP, gRPC and probe listeners bind: 0.0.0.0 (every
    # interface) in containers, 127.0.0.1 in the local stack behind nginx.
    BIND_HOST = "BIND_HOST"
    HTTP_PORT = "HTTP_PORT"
    GRPC_PORT = "GRPC_PORT"
    # Directory where prometheus-client keeps the metric files that gunicorn's
    # worker processes share; the name is fixed by prometheus-client.
    PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
    GUNICORN_WORKERS = "GUNICORN_WORKERS"
    GUNICORN_THREADS = "GUNICORN_THREADS"

    MONGO_URL = "MONGO_URL"
    MONGO_DB = "MONGO_DB"
    REDIS_URL = "REDIS_URL"

    # Router
    GRPC_PATH_URL = "GRPC_PATH_URL"  # base URL of the grpc-client service
    REDIS_PATH_URL = "REDIS_PATH_URL"  # base URL of the redis-pub service
    ROUTE_WEIGHTS = "ROUTE_WEIGHTS"  # "grpc=50,redis=50"
    DOWNSTREAM_TIMEOUT_S = "DOWNSTREAM_TIMEOUT_S"

    # gRPC path
    GRPC_SERVER_ADDR = "GRPC_SERVER_ADDR"  # host:port of the grpc-server
    GRPC_DEADLINE_S = "GRPC_DEADLINE_S"

    # Redis path
    REDIS_MODE = "REDIS_MODE"  # "pubsub" or "streams"
    # Streams mode: seconds a read entry stays unacknowledged before another
    # consumer claims it (a consumer that died leaves its entries pending).
    STREAM_CLAIM_IDLE_S = "STREAM_CLAIM_IDLE_S"

    # Live page: seconds a MongoDB summary (totals, top locations, pies) is
    # served before a background refresh starts.
    LIVE_SUMMARY_TTL_S = "LIVE_SUMMARY_TTL_S"


MONGO_DB_DEFAULT = "covid"
MONGO_CASES_COLLECTION = "cases"


class RedisKeys:
    """Redis channel, stream and view keys. All share the "covid:" prefix."""

    CHANNEL = "covid:cases"  # pub/sub channel of the Redis path
    STREAM = "covid:cases:stream"  # stream of the Redis path in streams mode
    STREAM_GROUP = "storers"
    # Real-time views, written by the storage module only.
    TOTAL = "covid:total"  # string counter: records stored
    BY_PATH = "covid:by_path"  # hash: path -> count
    BY_LOCATION = "covid:by_location"  # hash: location -> count
    BY_STATE = "covid:by_state"  # hash: state -> count
    BY_INFECTED_TYPE = "covid:by_infected_type"  # hash: infected_type -> count
    BY_AGE_RANGE = "covid:by_age_range"  # hash: range label ("0-9", ...) -> count
    LATEST = "covid:latest"  # list of record JSON, newest first, capped
    # Set of the record_ids already counted: the views change only for a new id.
    COUNTED_IDS = "covid:counted_ids"
