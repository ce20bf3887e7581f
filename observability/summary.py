"""Compare the two ingestion paths from Prometheus' HTTP API.

The local runner calls `path_comparison()` at the end of a load run and stores the
result in its run report. `format_table()` renders it for the terminal. The
queries are the overview dashboard's (observability.queries).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import urllib3
from covid_common import names

from observability import queries

QUERY_TIMEOUT_S = 10.0


class PrometheusQueryError(RuntimeError):
    """Prometheus rejected a query or could not be reached."""


@dataclass(frozen=True)
class PathMeasure:
    key: str
    label: str
    # Format of the value in the terminal table, e.g. "{:.1f}".
    number_format: str
    build: Callable[[str, str], str]


def _quantile(build, quantile: float) -> Callable[[str, str], str]:
    return lambda path, window: build(path, quantile, window)


def _unheard(path: str, window: str) -> str:
    # Only the Redis path publishes; the gRPC path has no such loss by design.
    if path != names.PATH_REDIS:
        return "vector(0)"
    return queries.unheard_publish_increase(window)


MEASURES: tuple[PathMeasure, ...] = (
    PathMeasure("request_rate", "requests/s", "{:.2f}", queries.path_request_rate),
    PathMeasure("error_ratio", "error ratio", "{:.2%}", queries.path_error_ratio),
    PathMeasure(
        "latency_p50_s",
        "latency p50 (ms)",
        "{:.1f}",
        _quantile(queries.path_latency_quantile, 0.5),
    ),
    PathMeasure(
        "latency_p99_s",
        "latency p99 (ms)",
        "{:.1f}",
        _quantile(queries.path_latency_quantile, 0.99),
    ),
    PathMeasure(
        "lag_p99_s",
        "end-to-end lag p99 (ms)",
        "{:.1f}",
        _quantile(queries.path_lag_quantile, 0.99),
    ),
    PathMeasure("stored_rate", "stored/s", "{:.2f}", queries.path_stored_rate),
    PathMeasure(
        "records_stored",
        "records stored",
        "{:.0f}",
        lambda path, window: queries.path_stored_total(path),
    ),
    PathMeasure("unheard_publishes", "unheard publishes", "{:.0f}", _unheard),
)
# Measures kept in seconds in the result and shown in milliseconds in the table.
_SECONDS = {"latency_p50_s", "latency_p99_s", "lag_p99_s"}


def query_instant(
    http: urllib3.PoolManager, prometheus_url: str, expr: str
) -> float | None:
    """Evaluate `expr` at the current time and return its single value.

    Returns None when the result is empty or not a number (a quantile of no
    samples is NaN). Raises PrometheusQueryError on a rejected query, an HTTP
    error, or a result with more than one series.
    """
    url = prometheus_url.rstrip("/") + "/api/v1/query"
    try:
        response = http.request(
            "GET",
            url,
            fields={"query": expr},
            timeout=urllib3.Timeout(total=QUERY_TIMEOUT_S),
            retries=False,
        )
    except urllib3.exceptions.HTTPError as error:
        raise PrometheusQueryError(f"request to {url} failed: {error}") from error

    try:
        body = json.loads(response.data)
    except ValueError as error:
        raise PrometheusQueryError(
            f"{url} returned HTTP {response.status} with a body that is not JSON"
        ) from error
    if response.status != 200 or body.get("status") != "success":
        raise PrometheusQueryError(
            f"query {expr!r} failed with HTTP {response.status}: "
            f"{body.get('errorType')}: {body.get('error')}"
        )

    return _single_value(body["data"], expr)


def _single_value(data: dict, expr: str) -> float | None:
    if data["resultType"] == "scalar":
        value = float(data["result"][1])
    else:
        series = data["result"]
        if not series:
            return None
        if len(series) > 1:
            raise PrometheusQueryError(
                f"query {expr!r} returned {len(series)} series, expected one"
            )
        value = float(series[0]["value"][1])
    if math.isnan(value) or math.isinf(value):
        return None
    return value


def path_comparison(prometheus_url: str, window_s: float) -> dict:
    """Measure each path over the last `window_s` seconds from Prometheus.

    Returns {"window_s": ..., "paths": {path: {measure: value}}}, where a value
    is None when Prometheus has no data for it. Rates are per second, latencies
    and lag in seconds; "records_stored" counts since the storing processes
    started, the other measures cover the window only.
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    # Prometheus range selectors take whole units; round up so the window is
    # never shorter than requested.
    window = f"{math.ceil(window_s)}s"
    http = urllib3.PoolManager()
    paths = {}
    for path in names.PATHS:
        paths[path] = {
            measure.key: query_instant(
                http, prometheus_url, measure.build(path, window)
            )
            for measure in MEASURES
        }
    return {"window_s": math.ceil(window_s), "paths": paths}


def _format_value(measure: PathMeasure, value: float | None) -> str:
    if value is None:
        return "-"
    if measure.key in _SECONDS:
        value *= 1000.0
    return measure.number_format.format(value)


def format_table(result: dict) -> str:
    """Render a `path_comparison()` result as a text table, one row per measure."""
    paths = list(result["paths"])
    headers = ["measure"] + [queries.PATH_TITLES.get(path, path) for path in paths]
    rows = [
        [measure.label]
        + [
            _format_value(measure, result["paths"][path].get(measure.key))
            for path in paths
        ]
        for measure in MEASURES
    ]
    widths = [
        max(len(row[column]) for row in [headers, *rows])
        for column in range(len(headers))
    ]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [
            cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)
        ]
        return "  ".join([first, *rest])

    title = f"Paths over the last {result['window_s']} s (from Prometheus)"
    return "\n".join([title, line(headers), *(line(row) for row in rows)])
