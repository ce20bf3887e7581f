"""WSGI entry point of the redis_pub service, started by gunicorn."""

from covid_common.config import load_redis_pub_config
from covid_common.logs import setup_logging

from redis_pub.app import create_app

config = load_redis_pub_config()
setup_logging(config.log_level)
app = create_app(config)
