"""One logging set-up for every service: plain text lines on stderr.

Each line reads `<time> <level> <logger> <message>`. Modules log through
`logging.getLogger(__name__)`; the level comes from LOG_LEVEL via the config.
"""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit, urlunsplit

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr at `level`, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # A line per request comes from our own middleware, so werkzeug's access log
    # would only repeat it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def redact_url(url: str) -> str:
    """Replace the password in a URL with "***", so the URL is safe to log."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if not password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
