"""Compare the two ingestion paths from Prometheus' HTTP API.

The local runner calls `path_comparison()` at the end of a load run and stores the
result in its run report. `format_table()` renders it for the terminal. The
queries come from observability.queries, like the overview dashboard's.

Record rates are counted over the load window itself: the growth of a counter
between the window's start and the last scrape, divided by the window's
length. A rate() over a window evaluated some seconds after the load ended
would average over idle seconds and lose the counts before a series' first
scrape, and read lower than what the load generator sent.
"""

from __future__ import annotations

import json
import math
import time
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
    # PromQL of the measure from the path and a range such as "75s". It is
    # evaluated once, after the load.
    build: Callable[[str, str], str] | None = None
    # Counter totals of the path that add up to one count per record. The
    # measure is their growth per second over the load window.
    totals: Callable[[str], tuple[str, ...]] | None = None

    def expressions(self, path: str, window: str) -> tuple[str, ...]:
        """Return every PromQL expression that the measure evaluates for `path`."""
        if self.totals is not None:
            return self.totals(path)
        return (self.build(path, window),)


def _quantile(build, quantile: float) -> Callable[[str, str], str]:
    return lambda path, window: build(path, quantile, window)


def _unheard(path: str, window: str) -> str:
    # Only the Redis path publishes; the gRPC path has no such loss by design.
    if path != names.PATH_REDIS:
        return "vector(0)"
    return queries.unheard_publish_increase(window)


def _sent_totals(path: str) -> tuple[str, ...]:
    # Every record the router tried: the path accepted it or the attempt failed.
    return (queries.path_routed_total(path), queries.path_failed_total(path))


MEASURES: tuple[PathMeasure, ...] = (
    PathMeasure("sent_rate", "records/s sent", "{:.2f}", totals=_sent_totals),
    PathMeasure("error_ratio", "error ratio", "{:.2%}", build=queries.path_error_ratio),
    PathMeasure(
        "latency_p50_s",
        "latency p50 (ms)",
        "{:.1f}",
        build=_quantile(queries.path_latency_quantile, 0.5),
    ),
    PathMeasure(
        "latency_p99_s",
        "latency p99 (ms)",
        "{:.1f}",
        build=_quantile(queries.path_latency_quantile, 0.99),
    ),
    PathMeasure(
        "lag_p99_s",
        "end-to-end lag p99 (ms)",
        "{:.1f}",
        build=_quantile(queries.path_lag_quantile, 0.99),
    ),
    PathMeasure(
        "stored_rate",
        "stored/s",
        "{:.2f}",
        totals=lambda path: (queries.path_stored_total(path),),
    ),
    PathMeasure(
        "records_stored",
        "records stored",
        "{:.0f}",
        build=lambda path, window: queries.path_stored_total(path),
    ),
    PathMeasure("unheard_publishes", "unheard publishes", "{:.0f}", build=_unheard),
)
# Measures kept in seconds in the result and shown in milliseconds in the table.
_SECONDS = {"latency_p50_s", "latency_p99_s", "lag_p99_s"}


def query_instant(
    http: urllib3.PoolManager,
    prometheus_url: str,
    expr: str,
    at: float | None = None,
) -> float | None:
    """Evaluate `expr` at unix time `at` (default: now) and return its single value.

    Returns None when the result is empty or not a number (a quantile of no
    samples is NaN). Raises PrometheusQueryError on a rejected query, an HTTP
    error, or a result with more than one series.
    """
    url = prometheus_url.rstrip("/") + "/api/v1/query"
    fields = {"query": expr}
    if at is not None:
        fields["time"] = f"{at:.3f}"
    try:
        response = http.request(
            "GET",
            url,
            fields=fields,
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


def path_comparison(
    prometheus_url: str, start: float, end: float, at: float | None = None
) -> dict:
    """Measure each path over the load that ran from unix time `start` to `end`.

    Record rates ("sent_rate", "stored_rate") are counted within the load
    window, as the load generator counts its own rate. The other measures are
    evaluated at `at` (default: now, which must be after `end`) over a range
    from `start` to `at`. Seconds after the load add no samples to their
    histograms and counters, so they do not dilute latencies or ratios.
    "records_stored" counts since the storing processes started.

    Returns {"window_s": ..., "paths": {path: {measure: value}}}, where a value
    is None when Prometheus has no data for it. Rates are per second, latencies
    and lag in seconds.
    """
    if end <= start:
        raise ValueError(f"end must be after start, got start={start} end={end}")
    at = time.time() if at is None else at
    if at < end:
        raise ValueError(f"at must not be before end, got at={at} end={end}")
    # Prometheus range selectors take whole units, so the range is rounded up
    # and never starts after the load.
    window = f"{math.ceil(at - start)}s"
    http = urllib3.PoolManager()
    paths = {}
    for path in names.PATHS:
        values: dict[str, float | None] = {}
        for measure in MEASURES:
            if measure.totals is not None:
                values[measure.key] = _growth_rate(
                    http, prometheus_url, measure.totals(path), start, end, at
                )
            else:
                expr = measure.build(path, window)
                values[measure.key] = query_instant(http, prometheus_url, expr, at)
        paths[path] = values
    return {"window_s": round(end - start, 1), "paths": paths}


def _sum_of_totals(
    http: urllib3.PoolManager, prometheus_url: str, exprs: tuple[str, ...], at: float
) -> float | None:
    values = [query_instant(http, prometheus_url, expr, at) for expr in exprs]
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _growth_rate(
    http: urllib3.PoolManager,
    prometheus_url: str,
    exprs: tuple[str, ...],
    start: float,
    end: float,
    at: float,
) -> float | None:
    """Return the growth of the summed counters from `start` to `at` per second of load.

    A counter has no series before its first increment, so an empty result at
    `start` counts as 0. The value at `at` includes every count of the load
    once Prometheus has scraped after the load's last record.
    """
    # NOTE: a counter reset between start and at (a storing process restarted
    # during the load) makes this rate too low, because unlike rate() the
    # difference does not correct for resets.
    final = _sum_of_totals(http, prometheus_url, exprs, at)
    if final is None:
        return None
    initial = _sum_of_totals(http, prometheus_url, exprs, start) or 0.0
    return (final - initial) / (end - start)


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

    title = f"Paths over {result['window_s']} s of load (from Prometheus)"
    return "\n".join([title, line(headers), *(line(row) for row in rows)])
