"""Entry point: `python -m grpc_server`."""

import sys

from grpc_server.server import serve

sys.exit(serve())
