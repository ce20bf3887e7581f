"""WSGI entry point of the router service, started by gunicorn.

Each gunicorn worker imports this module after the fork, so each worker reads
and checks the configuration once. An invalid variable stops the worker with a
ConfigError naming it, and gunicorn then exits.
"""

from covid_common.config import load_router_config
from covid_common.logs import setup_logging

from router.app import create_app

config = load_router_config()
setup_logging(config.log_level)
app = create_app(config)
