"""WSGI entry point of the grpc_client service, started by gunicorn.

Each worker imports this module after the fork and opens its own gRPC channel
on first use, so no channel crosses a fork.
"""

from covid_common.config import load_grpc_client_config
from covid_common.logs import setup_logging

from grpc_client.app import create_app

config = load_grpc_client_config()
setup_logging(config.log_level)
app = create_app(config)
