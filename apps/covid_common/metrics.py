"""Prometheus metrics of every service, defined once.

Dashboards and alert rules use these names, so they change only together.
Under gunicorn, PROMETHEUS_MULTIPROC_DIR must be set before this module is
imported: prometheus-client then writes each worker's values to files in that
directory and `render_metrics` merges them. The gunicorn config removes a dead
worker's live gauges (see `mark_process_dead`).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from covid_common import names

# Request latency buckets from 1 ms to 10 s.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
# Record lag buckets: from router receipt to stored, up to 60 s for a backlog.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter(
    "covid_http_requests_total",
    "HTTP requests served, by service, route template, method and status code.",
    ["service", "route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "covid_http_request_duration_seconds",
    "Time to serve an HTTP request, in seconds.",
    ["service", "route", "method"],
    buckets=LATENCY_BUCKETS,
)
ROUTER_RECORDS_ROUTED = Counter(
    "covid_router_records_routed_total",
    "Records the router accepted from its downstream path service, by path.",
    ["path"],
)
ROUTER_RECORDS_REJECTED = Counter(
    "covid_router_records_rejected_total",
    "Requests the router rejected before routing, by reason.",
    ["reason"],
)
ROUTER_DOWNSTREAM_ERRORS = Counter(
    "covid_router_downstream_errors_total",
    "Failed forwards from the router to a path service, by path and kind "
    "(timeout, connection, unavailable, bad_status).",
    ["path", "kind"],
)
RECORDS_STORED = Counter(
    "covid_records_stored_total",
    "New records stored in MongoDB and counted in the Redis views, by path.",
    ["path"],
)
RECORDS_DUPLICATE = Counter(
    "covid_records_duplicate_total",
    "Records whose record_id was already stored, by path.",
    ["path"],
)
STORAGE_ERRORS = Counter(
    "covid_storage_errors_total",
    "Failed storage operations, by path and store (mongo, redis).",
    ["path", "store"],
)
RECORD_LAG = Histogram(
    "covid_record_lag_seconds",
    "Seconds from router receipt (received_ts) to the record being stored.",
    ["path"],
    buckets=LAG_BUCKETS,
)
REDIS_PUBLISH_UNHEARD = Counter(
    "covid_redis_publish_unheard_total",
    "PUBLISH commands that reached no subscriber, so the record was not stored.",
)
REDIS_SUBSCRIBER_RECONNECTS = Counter(
    "covid_redis_subscriber_reconnects_total",
    "Times the Redis subscriber lost its connection and connected again.",
)
REDIS_SUBSCRIBER_LAST_MESSAGE = Gauge(
    "covid_redis_subscriber_last_message_timestamp_seconds",
    "Unix time of the subscriber's last message or successful connection check.",
    multiprocess_mode="max",
)
GRPC_SERVER_REQUESTS = Counter(
    "covid_grpc_server_requests_total",
    "gRPC calls the grpc-server finished, by method and status code.",
    ["method", "code"],
)
GRPC_SERVER_REQUEST_DURATION = Histogram(
    "covid_grpc_server_request_duration_seconds",
    "Time the grpc-server took per call, in seconds.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)


def render_metrics() -> tuple[bytes, str]:
    """Return the exposition text and its content type.

    With PROMETHEUS_MULTIPROC_DIR set, the values of every process that wrote to
    the directory are merged; otherwise this process's registry is rendered.
    """
    if os.environ.get(names.Env.PROMETHEUS_MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live-gauge files; its counters stay in the totals."""
    if os.environ.get(names.Env.PROMETHEUS_MULTIPROC_DIR):
        multiprocess.mark_process_dead(pid)
