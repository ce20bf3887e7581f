"""The live service: a web page of the stored cases and the JSON API behind it.

Routes (all relative to where the service is mounted):
- `/`: the page; it polls the API and redraws without a reload.
- `/api/summary`: totals, per path, top 3 locations, cases by state and by
  infected type, from a cached MongoDB aggregation.
- `/api/cases?limit=N&before=CURSOR`: stored cases, newest first, by keyset.
- `/api/latest?count=N`: the newest cases from the Redis LATEST list.
- `/api/age-ranges`: cases per age range from the Redis BY_AGE_RANGE hash.
- `/charts/state.svg`, `/charts/infected-type.svg`, `/charts/age-range.svg`.

Behind a proxy that mounts the service under a path prefix (the ingress serves it
at /live/), the page uses relative URLs only, and X-Forwarded-Prefix, when sent,
sets the page's base URL.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import pymongo
import redis
from covid_common import names
from covid_common.http import ApiError, create_base_app, error_response, json_response
from covid_common.record import INFECTED_TYPES, STATES
from flask import Flask, Response, render_template, request
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from live import charts
from live.cache import RefreshingCache
from live.config import LiveConfig
from live.reads import CaseReader, PageCursor, RedisViews, Summary

logger = logging.getLogger(__name__)

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
LATEST_DEFAULT = 5
# The storage module caps the LATEST list at 100 entries.
LATEST_MAX = 100
# Seconds between attempts to create the indexes while MongoDB is unreachable.
INDEX_RETRY_S = 5.0
SVG_MIMETYPE = "image/svg+xml"
# A path prefix from X-Forwarded-Prefix that the page accepts as its base URL.
PREFIX_PATTERN = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def create_app(config: LiveConfig, *, start_background: bool = True) -> Flask:
    """Build the live app; with `start_background`, create the indexes and the
    first summary in a background thread, so start-up does not wait for MongoDB."""
    mongo_client = pymongo.MongoClient(
        config.storage.mongo_url,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=2000,
        # The summary aggregation reads every stored case; give it time.
        socketTimeoutMS=120_000,
        tz_aware=True,
        appname=names.LIVE.name,
    )
    redis_client = redis.Redis.from_url(
        config.storage.redis_url, socket_timeout=5, socket_connect_timeout=2
    )
    reader = CaseReader(mongo_client, config.storage.mongo_db)
    views = RedisViews(redis_client)
    summaries = RefreshingCache(reader.summary, config.summary_ttl_s)

    def ready_check() -> Mapping[str, str]:
        failures = {}
        for name, ping in (("mongo", reader.ping), ("redis", views.ping)):
            try:
                ping()
            except (PyMongoError, RedisError) as error:
                failures[name] = f"ping failed: {error}"
        return failures

    app = create_base_app(names.LIVE, ready_check)
    # Trust only X-Forwarded-Prefix, from the one proxy in front (the ingress).
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=0, x_proto=0, x_host=0, x_prefix=1)
    app.extensions["live"] = {"reader": reader, "views": views, "summaries": summaries}
    _register_store_errors(app)
    _register_page(app)
    _register_api(app, reader, views, summaries)
    _register_charts(app, views, summaries)

    if start_background:
        threading.Thread(
            target=_prepare, args=(reader, summaries), name="live-prepare", daemon=True
        ).start()
    return app


def _prepare(reader: CaseReader, summaries: RefreshingCache[Summary]) -> None:
    """Create the indexes, retrying until MongoDB is reachable, then warm the cache."""
    attempt = 0
    while True:
        attempt += 1
        try:
            reader.ensure_indexes()
            break
        except PyMongoError as error:
            logger.warning(
                "creating indexes failed (attempt %d), retrying in %.0f s: %s",
                attempt,
                INDEX_RETRY_S,
                error,
            )
            time.sleep(INDEX_RETRY_S)
    summaries.refresh_in_background()


def _register_store_errors(app: Flask) -> None:
    @app.errorhandler(PyMongoError)
    def mongo_error(error: PyMongoError) -> Response:
        logger.warning("MongoDB read failed on %s: %r", request.path, error)
        return error_response(
            503, "mongo_unavailable", "MongoDB did not answer; try again shortly."
        )

    @app.errorhandler(RedisError)
    def redis_error(error: RedisError) -> Response:
        logger.warning("Redis read failed on %s: %r", request.path, error)
        return error_response(
            503, "redis_unavailable", "Redis did not answer; try again shortly."
        )


def _register_page(app: Flask) -> None:
    @app.get("/")
    def page() -> str:
        prefix = request.script_root
        if prefix and not PREFIX_PATTERN.fullmatch(prefix):
            logger.warning("ignored X-Forwarded-Prefix %r: not a plain path", prefix)
            prefix = ""
        return render_template(
            "index.html",
            base_href=prefix + "/" if prefix else None,
            page_size=PAGE_SIZE_DEFAULT,
        )


def _register_api(
    app: Flask,
    reader: CaseReader,
    views: RedisViews,
    summaries: RefreshingCache[Summary],
) -> None:
    @app.get("/api/summary")
    def summary() -> Response:
        current = summaries.get()
        body = current.to_json()
        body["age_s"] = round((datetime.now(UTC) - current.as_of).total_seconds(), 3)
        return _no_store(json_response(body))

    @app.get("/api/cases")
    def cases() -> Response:
        limit = _int_arg("limit", PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX)
        before = _cursor_arg("before")
        summary = summaries.peek()
        newest = summary.newest_stored_at if summary else None
        page = reader.page(limit, before, newest)
        body = {"cases": page.cases, "limit": limit, "next_before": page.next_before}
        return _no_store(json_response(body))

    @app.get("/api/latest")
    def latest() -> Response:
        count = _int_arg("count", LATEST_DEFAULT, 1, LATEST_MAX)
        return _no_store(json_response({"cases": views.latest(count)}))

    @app.get("/api/age-ranges")
    def age_ranges() -> Response:
        return _no_store(json_response({"age_ranges": views.age_ranges()}))


def _register_charts(
    app: Flask, views: RedisViews, summaries: RefreshingCache[Summary]
) -> None:
    @app.get("/charts/state.svg")
    def state_chart() -> Response:
        counts = summaries.get().by_state
        return _svg(charts.pie_svg("Cases by state", counts, STATES))

    @app.get("/charts/infected-type.svg")
    def infected_type_chart() -> Response:
        counts = summaries.get().by_infected_type
        return _svg(charts.pie_svg("Cases by infected type", counts, INFECTED_TYPES))

    @app.get("/charts/age-range.svg")
    def age_range_chart() -> Response:
        counts = views.age_ranges()
        return _svg(charts.bar_svg("Cases by age range", counts, "age range (years)"))


def _int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    problem = f"must be an integer from {minimum} to {maximum}"
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise ApiError(
            400,
            "invalid_parameter",
            f"Query parameter {name} is {text!r}; it {problem}.",
            {name: problem},
        )
    return value


def _cursor_arg(name: str) -> PageCursor | None:
    text = request.args.get(name)
    if text is None or text == "":
        return None
    try:
        return PageCursor.decode(text)
    except ValueError as error:
        raise ApiError(
            400,
            "invalid_parameter",
            f"Query parameter {name} is {text[:80]!r}; it {error}.",
            {name: str(error)},
        ) from None


def _svg(markup: str) -> Response:
    return _no_store(Response(markup, mimetype=SVG_MIMETYPE))


def _no_store(response: Response) -> Response:
    # Every response shows data that changes by the second.
    response.headers["Cache-Control"] = "no-store"
    return response
