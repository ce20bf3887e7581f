"""PromQL for comparing the two ingestion paths.

The overview dashboard, the alert rules and the terminal summary build their
queries from these functions, so a panel, an alert and the summary of a local run
measure a path the same way. `window` is a PromQL range: a duration such as
"300s", or Grafana's "$__rate_interval" in dashboards.
"""

from __future__ import annotations

from covid_common import names

# The HTTP service that receives the router's requests for each path. Its
# request metrics measure the path from its entry, without the router's own time.
PATH_ENTRY_SERVICE = {
    names.PATH_GRPC: names.GRPC_CLIENT.name,
    names.PATH_REDIS: names.REDIS_PUB.name,
}

PATH_TITLES = {names.PATH_GRPC: "gRPC", names.PATH_REDIS: "Redis"}

# Routes that are not part of the ingestion API; request panels leave them out so
# probes and scrapes do not dilute rates and latencies.
INTERNAL_ROUTES = (names.HEALTH_ROUTE, names.READY_ROUTE, names.METRICS_ROUTE)
INTERNAL_ROUTES_RE = "|".join(INTERNAL_ROUTES)


# The router sends records to a path's /cases one by one or to its
# /cases/batch several at a time, and the path's panels cover both routes.
CASES_ROUTES_RE = f"{names.CASES_ROUTE}|{names.CASES_BATCH_ROUTE}"


def _cases_selector(path: str, extra: str = "") -> str:
    service = PATH_ENTRY_SERVICE[path]
    selector = f'service="{service}", route=~"{CASES_ROUTES_RE}"'
    if extra:
        selector += f", {extra}"
    return selector


def path_request_rate(path: str, window: str) -> str:
    """Requests per second to the record routes of the path's entry service.

    A request to /cases/batch carries several records, so this is no record rate.
    """
    return (
        "sum(rate(covid_http_requests_total{"
        + _cases_selector(path)
        + f"}}[{window}]))"
    )


def _path_rate(metric: str, path: str, window: str) -> str:
    return f'sum(rate({metric}{{path="{path}"}}[{window}]))'


def path_error_ratio(path: str, window: str) -> str:
    """Share of the path's records that failed, as the router saw them.

    Failures are the router's downstream errors for the path (timeouts, refused
    connections, 5xx responses). The denominator is every record the router tried
    to send down the path. `or vector(0)` turns "no error series yet" into 0 so
    the panel shows 0 and not "no data" while traffic flows.
    """
    errors = _path_rate("covid_router_downstream_errors_total", path, window)
    return f"(({errors}) or vector(0)) / ({path_attempt_rate(path, window)})"


def path_attempt_rate(path: str, window: str) -> str:
    """Records per second that the router tried to send down the path."""
    routed = path_routed_rate(path, window)
    errors = _path_rate("covid_router_downstream_errors_total", path, window)
    # covid_router_records_routed_total counts records the path accepted, so a
    # failed attempt is only in the error counter.
    return f"(({routed}) or vector(0)) + (({errors}) or vector(0))"


def path_routed_rate(path: str, window: str) -> str:
    """Records per second that the router handed to the path successfully."""
    return _path_rate("covid_router_records_routed_total", path, window)


def path_latency_quantile(path: str, quantile: float, window: str) -> str:
    """Quantile of the path's record request duration at its entry service, in s."""
    return (
        f"histogram_quantile({quantile}, sum by (le) ("
        "rate(covid_http_request_duration_seconds_bucket{"
        + _cases_selector(path)
        + f"}}[{window}])))"
    )


def path_lag_quantile(path: str, quantile: float, window: str) -> str:
    """Quantile of the time from router receipt to storage, in s."""
    return (
        f"histogram_quantile({quantile}, sum by (le) ("
        f'rate(covid_record_lag_seconds_bucket{{path="{path}"}}[{window}])))'
    )


def path_stored_rate(path: str, window: str) -> str:
    """New records per second that the path's storing process wrote."""
    return _path_rate("covid_records_stored_total", path, window)


def path_routed_total(path: str) -> str:
    """Records the router handed to the path since its processes started."""
    return f'sum(covid_router_records_routed_total{{path="{path}"}})'


def path_failed_total(path: str) -> str:
    """Records the router failed to send down the path since its processes started."""
    return f'sum(covid_router_downstream_errors_total{{path="{path}"}})'


def path_stored_total(path: str) -> str:
    """New records the path stored since its storing processes started."""
    return f'sum(covid_records_stored_total{{path="{path}"}})'


def path_duplicate_rate(path: str, window: str) -> str:
    """Records per second that arrived again with a record_id already stored."""
    return _path_rate("covid_records_duplicate_total", path, window) + " or vector(0)"


def path_storage_error_rate(path: str, window: str) -> str:
    """Failed MongoDB or Redis writes per second on the path's storing process."""
    return _path_rate("covid_storage_errors_total", path, window) + " or vector(0)"


# Every service imports the shared metrics module, so every service exports the
# Redis path's unlabelled metrics, at 0. These selectors keep the process that
# really updates each one: for the gauge, 0 would read as 55 years of silence.
REDIS_PUB_JOB = f'job="{names.REDIS_PUB.name}"'
REDIS_SUB_JOB = f'job="{names.REDIS_SUB.name}"'


def unheard_publish_increase(window: str) -> str:
    """Redis PUBLISH calls that reached no subscriber: records lost on that path."""
    return (
        f"sum(increase(covid_redis_publish_unheard_total{{{REDIS_PUB_JOB}}}[{window}]))"
    )


def subscriber_reconnect_increase(window: str) -> str:
    return (
        "sum(increase(covid_redis_subscriber_reconnects_total"
        f"{{{REDIS_SUB_JOB}}}[{window}]))"
    )


def subscriber_silence_seconds() -> str:
    """Seconds since redis-sub last saw a message or a heartbeat."""
    return (
        "time() - max(covid_redis_subscriber_last_message_timestamp_seconds"
        f"{{{REDIS_SUB_JOB}}})"
    )
