"""WSGI entry point of the live service.

Start it with `gunicorn --config python:covid_common.gunicorn_conf live.wsgi:app`.
"""

from __future__ import annotations

import logging
import sys

from covid_common.config import ConfigError, log_config
from covid_common.logs import setup_logging

from live.app import create_app
from live.config import load_live_config

try:
    config = load_live_config()
except ConfigError as error:
    print(f"live: {error}", file=sys.stderr)
    sys.exit(1)

setup_logging(config.log_level)
log_config(logging.getLogger("live"), config)
app = create_app(config)
