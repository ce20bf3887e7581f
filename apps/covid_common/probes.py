"""HTTP server thread for the services that are not web apps (gRPC server, subscriber).

It serves /healthz, /readyz and /metrics from the shared Flask app on the
service's http_port, beside the service's main work.
"""

from __future__ import annotations

import logging
import threading

from werkzeug.serving import BaseWSGIServer, make_server

from covid_common import names
from covid_common.config import DEFAULT_BIND_HOST
from covid_common.http import ReadyCheck, create_base_app

logger = logging.getLogger(__name__)


class ProbeServer:
    """A threaded werkzeug server for the probe and metrics routes."""

    def __init__(
        self,
        service: names.Service,
        port: int,
        ready_check: ReadyCheck,
        host: str = DEFAULT_BIND_HOST,
    ):
        self._app = create_base_app(service, ready_check)
        self._server: BaseWSGIServer = make_server(host, port, self._app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probe-http", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_port

    def start(self) -> None:
        self._thread.start()
        logger.info(
            "probe HTTP server listening on %s port %d",
            self._server.server_address[0],
            self.port,
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
