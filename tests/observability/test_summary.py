"""The path comparison against a real Prometheus, and its terminal table."""

from __future__ import annotations

import re

import pytest
import urllib3
from covid_common import names

from observability import summary
from tests.observability.promtools import PrometheusProcess, running_prometheus
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def empty_prometheus() -> PrometheusProcess:
    """A Prometheus that scrapes nothing, so only literal queries return data."""
    with running_prometheus() as prometheus:
        yield prometheus


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager()


def test_query_instant_returns_number(
    empty_prometheus: PrometheusProcess, http: urllib3.PoolManager
) -> None:
    value = summary.query_instant(http, empty_prometheus.url, "vector(2.5)")

    assert value == 2.5


def test_query_instant_returns_scalar(
    empty_prometheus: PrometheusProcess, http: urllib3.PoolManager
) -> None:
    assert summary.query_instant(http, empty_prometheus.url, "scalar(vector(3))") == 3


def test_query_instant_empty_result_is_none(
    empty_prometheus: PrometheusProcess, http: urllib3.PoolManager
) -> None:
    value = summary.query_instant(
        http, empty_prometheus.url, "sum(rate(covid_records_stored_total[1m]))"
    )

    assert value is None


def test_query_instant_nan_is_none(
    empty_prometheus: PrometheusProcess, http: urllib3.PoolManager
) -> None:
    assert summary.query_instant(http, empty_prometheus.url, "vector(0) / 0") is None


def test_query_instant_bad_syntax_raises(
    empty_prometheus: PrometheusProcess, http: urllib3.PoolManager
) -> None:
    with pytest.raises(summary.PrometheusQueryError, match="bad_data"):
        summary.query_instant(http, empty_prometheus.url, "sum(rate(x[1m])")


def test_query_instant_many_series_raises(
    empty_prometheus: PrometheusProcess, http: urllib3.PoolManager
) -> None:
    expr = 'label_replace(vector(1), "a", "1", "", "") or vector(2)'

    with pytest.raises(summary.PrometheusQueryError, match="2 series"):
        summary.query_instant(http, empty_prometheus.url, expr)


def test_query_instant_unreachable_raises(http: urllib3.PoolManager) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(summary.PrometheusQueryError, match="failed"):
        summary.query_instant(http, url, "vector(1)")


def test_path_comparison_without_data(empty_prometheus: PrometheusProcess) -> None:
    result = summary.path_comparison(empty_prometheus.url, window_s=59.5)

    assert result["window_s"] == 60
    assert set(result["paths"]) == set(names.PATHS)
    grpc = result["paths"][names.PATH_GRPC]
    assert set(grpc) == {measure.key for measure in summary.MEASURES}
    assert grpc["request_rate"] is None
    assert grpc["latency_p99_s"] is None
    # The gRPC path cannot lose a publish: its value is a literal 0.
    assert grpc["unheard_publishes"] == 0
    assert result["paths"][names.PATH_REDIS]["unheard_publishes"] is None


def test_path_comparison_rejects_zero_window(
    empty_prometheus: PrometheusProcess,
) -> None:
    with pytest.raises(ValueError, match="window_s"):
        summary.path_comparison(empty_prometheus.url, window_s=0)


def test_format_table_converts_seconds_to_ms() -> None:
    measures = {measure.key: None for measure in summary.MEASURES}
    result = {
        "window_s": 60,
        "paths": {
            names.PATH_GRPC: {
                **measures,
                "request_rate": 12.345,
                "error_ratio": 0.0125,
                "latency_p99_s": 0.0421,
                "records_stored": 740.0,
            },
            names.PATH_REDIS: measures,
        },
    }

    lines = summary.format_table(result).splitlines()

    assert lines[0] == "Paths over the last 60 s (from Prometheus)"
    assert lines[1].split() == ["measure", "gRPC", "Redis"]
    # Columns are separated by two or more spaces; labels contain single ones.
    cells = [re.split(r" {2,}", line.strip()) for line in lines[2:]]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["requests/s"] == ["12.35", "-"]
    assert rows["error ratio"] == ["1.25%", "-"]
    assert rows["latency p99 (ms)"] == ["42.1", "-"]
    assert rows["records stored"] == ["740", "-"]
    assert len(lines) == 2 + len(summary.MEASURES)
