"""grpc-server process: the CaseIngest service, gRPC health and an HTTP probe thread.

The health service reports NOT_SERVING until storage replies to a ping and the
unique index exists, and again whenever a periodic storage check fails. SIGTERM or
SIGINT sets NOT_SERVING, stops taking calls, lets running calls finish within
STOP_GRACE_S and exits with status 0.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from covid.v1 import ingest_pb2, ingest_pb2_grpc
from covid_common import names
from covid_common.config import (
    ConfigError,
    GrpcServerConfig,
    listen_address,
    load_grpc_server_config,
    log_config,
)
from covid_common.logs import setup_logging
from covid_common.probes import ProbeServer
from covid_common.storage import Storage, StorageError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from grpc_server.servicer import CaseIngestServicer

logger = logging.getLogger(__name__)

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["CaseIngest"].full_name
STOP_GRACE_S = 10.0
STORAGE_CHECK_INTERVAL_S = 2.0

Serving = health_pb2.HealthCheckResponse.ServingStatus


@dataclass
class RunningServer:
    """A started server and the pieces needed to watch and stop it."""

    server: grpc.Server
    health: health.HealthServicer
    probes: ProbeServer
    storage: Storage
    grpc_port: int
    stop_event: threading.Event
    monitor: threading.Thread

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Report NOT_SERVING, finish running calls within grace_s, then shut down."""
        self.stop_event.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self.monitor.join(timeout=STORAGE_CHECK_INTERVAL_S + 5)
        self.probes.stop()
        self.storage.close()
        logger.info("grpc-server stopped")


def start(config: GrpcServerConfig, host: str | None = None) -> RunningServer:
    """Start the gRPC server, the storage monitor and the probe HTTP server.

    Both listeners bind `host`, or config.bind_host when it is None.
    """
    host = config.bind_host if host is None else host
    storage = Storage.from_urls(
        config.storage.mongo_url, config.storage.mongo_db, config.storage.redis_url
    )
    health_servicer = health.HealthServicer()
    _set_health(health_servicer, Serving.NOT_SERVING)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.max_workers))
    ingest_pb2_grpc.add_CaseIngestServicer_to_server(
        CaseIngestServicer(storage), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    grpc_port = server.add_insecure_port(listen_address(host, config.grpc_port))
    server.start()
    logger.info("gRPC server listening on %s port %d", host, grpc_port)

    state = _StorageState()
    stop_event = threading.Event()
    monitor = threading.Thread(
        target=_watch_storage,
        args=(storage, health_servicer, state, stop_event),
        name="storage-monitor",
        daemon=True,
    )
    monitor.start()

    probes = ProbeServer(names.GRPC_SERVER, config.http_port, state.failures, host)
    probes.start()
    return RunningServer(
        server, health_servicer, probes, storage, grpc_port, stop_event, monitor
    )


class _StorageState:
    """Latest storage check result, read by /readyz."""

    def __init__(self) -> None:
        self.problem: str | None = "storage not checked yet"

    def failures(self) -> dict[str, str]:
        return {"storage": self.problem} if self.problem else {}


def _watch_storage(
    storage: Storage,
    health_servicer: health.HealthServicer,
    state: _StorageState,
    stop_event: threading.Event,
) -> None:
    """Check storage every few seconds and report the result as gRPC health."""
    indexes_ready = False
    while not stop_event.is_set():
        try:
            if not indexes_ready:
                storage.ensure_indexes()
                indexes_ready = True
            storage.check()
        except StorageError as error:
            if state.problem is None:
                logger.error("storage check failed, reporting NOT_SERVING: %s", error)
            state.problem = str(error)
            _set_health(health_servicer, Serving.NOT_SERVING)
        except Exception as error:  # noqa: BLE001 - e.g. index creation errors
            logger.error("storage set-up failed, reporting NOT_SERVING: %r", error)
            state.problem = repr(error)
            _set_health(health_servicer, Serving.NOT_SERVING)
        else:
            if state.problem is not None:
                logger.info("storage ready, reporting SERVING")
            state.problem = None
            if not stop_event.is_set():
                _set_health(health_servicer, Serving.SERVING)
            # Without traffic no store call runs the recount, so run it here.
            storage.recount_uncounted()
        stop_event.wait(STORAGE_CHECK_INTERVAL_S)


def _set_health(health_servicer: health.HealthServicer, status: int) -> None:
    # "" is the whole server, as probes that name no service ask for it.
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, status)


def serve() -> int:
    """Run the grpc-server until SIGTERM or SIGINT; return the exit status."""
    try:
        config = load_grpc_server_config()
    except ConfigError as error:
        print(f"grpc-server: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    log_config(logger, config)

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    running = start(config)
    stop_requested.wait()
    running.stop()
    return 0
