"""Gunicorn settings shared by the web services.

Start a service with
`gunicorn --config python:covid_common.gunicorn_conf <package>.wsgi:app`.
The listen address is BIND_HOST (default 0.0.0.0) and HTTP_PORT, or the
service's port in covid_common.names when HTTP_PORT is unset. Workers and
threads come from GUNICORN_WORKERS and GUNICORN_THREADS (default 2 workers,
4 threads; 32 threads for the router).
With PROMETHEUS_MULTIPROC_DIR set, that directory must belong
to this service alone: it is emptied when gunicorn starts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from covid_common import names
from covid_common.config import (
    DEFAULT_BIND_HOST,
    ConfigError,
    EnvReader,
    listen_address,
)


def _service_port(argv: list[str]) -> int:
    """Return the default port of the service whose `<package>.wsgi:app` is in argv."""
    for argument in argv:
        package = argument.partition(".wsgi")[0]
        for service in names.ALL_SERVICES:
            if argument.endswith(".wsgi:app") and service.package == package:
                return service.http_port
    raise ConfigError(
        names.Env.HTTP_PORT, "is required: no known service in the command line"
    )


_env = EnvReader()
_port = _env.raw(names.Env.HTTP_PORT)
http_port = (
    _env.integer(names.Env.HTTP_PORT, 0, 1, 65535) if _port else _service_port(sys.argv)
)
bind_host = _env.ip_address(names.Env.BIND_HOST, DEFAULT_BIND_HOST)

# The router's request threads mostly wait while router.coalesce sends their
# records on in batches, and more threads waiting means larger batches.
_DEFAULT_THREADS = {names.ROUTER.package: 32}
_package = next(
    (arg.partition(".wsgi")[0] for arg in sys.argv if arg.endswith(".wsgi:app")), ""
)

bind = listen_address(bind_host, http_port)
worker_class = "gthread"
workers = _env.integer(names.Env.GUNICORN_WORKERS, 2, 1, 64)
threads = _env.integer(
    names.Env.GUNICORN_THREADS, _DEFAULT_THREADS.get(_package, 4), 1, 256
)
# Requests take well under a second; a worker silent for 30 s is stuck.
timeout = 30
# On SIGTERM, in-flight requests get this long before workers are killed.
graceful_timeout = 20
# Seconds an idle keep-alive connection stays open. It must outlast the idle
# timeout of every client that pools connections to the service (the local
# nginx keeps upstream connections 30 s, urllib3 pools keep them until reuse):
# when the server closes first, a request sent on the closing connection fails,
# and nginx answers 502 because it never resends a POST.
keepalive = 75
# The services log one line per request themselves.
accesslog = None
# gRPC channels and pools are created in each worker, never in the master.
preload_app = False
# Gunicorn 27 opens a control socket at one fixed path per user by default.
# Several services on one machine would share that path, and a read-only
# container file system has no place for it.
control_socket_disable = True


def on_starting(server) -> None:
    """Empty the multiprocess metrics directory so old workers' values are gone."""
    directory = os.environ.get(names.Env.PROMETHEUS_MULTIPROC_DIR)
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()


def post_fork(server, worker) -> None:
    """Log each new worker; its clients are created on first use (see perprocess)."""
    server.log.info("worker %s started", worker.pid)


def child_exit(server, worker) -> None:
    """Drop the dead worker's live-gauge metric files."""
    from covid_common import metrics

    metrics.mark_process_dead(worker.pid)
