"""The path comparison against a real Prometheus, and its terminal table."""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


def test_query_instant_at_given_time(
    empty_prometheus: PrometheusProcess, http: urllib3.PoolManager
) -> None:
    value = summary.query_instant(http, empty_prometheus.url, "time()", at=1234.5)

    assert value == 1234.5


def test_path_comparison_without_data(empty_prometheus: PrometheusProcess) -> None:
    end = time.time()

    result = summary.path_comparison(empty_prometheus.url, end - 59.54, end)

    assert result["window_s"] == 59.5
    assert set(result["paths"]) == set(names.PATHS)
    grpc = result["paths"][names.PATH_GRPC]
    assert set(grpc) == {measure.key for measure in summary.MEASURES}
    assert grpc["sent_rate"] is None
    assert grpc["stored_rate"] is None
    assert grpc["latency_p99_s"] is None
    # The gRPC path cannot lose a publish: its value is a literal 0.
    assert grpc["unheard_publishes"] == 0
    assert result["paths"][names.PATH_REDIS]["unheard_publishes"] is None


def test_path_comparison_rejects_empty_window(
    empty_prometheus: PrometheusProcess,
) -> None:
    now = time.time()

    with pytest.raises(ValueError, match="end must be after start"):
        summary.path_comparison(empty_prometheus.url, now, now)


class SteadyLoad:
    """Counters of a load of `per_s` records per second on the gRPC path.

    Before `start` the exporter serves no series, as a labelled counter has none
    before its first increment. After `end` the counters stay where they are.
    """

    def __init__(self, start: float, end: float, per_s: float) -> None:
        self.start = start
        self.end = end
        self.per_s = per_s

    def exposition(self, now: float) -> str:
        if now < self.start:
            return ""
        count = math.floor(self.per_s * (min(now, self.end) - self.start))
        path = names.PATH_GRPC
        return (
            "# TYPE covid_router_records_routed_total counter\n"
            f'covid_router_records_routed_total{{path="{path}"}} {count}\n'
            "# TYPE covid_records_stored_total counter\n"
            f'covid_records_stored_total{{path="{path}"}} {count}\n'
        )


@contextlib.contextmanager
def serving_metrics(load: SteadyLoad) -> Iterator[str]:
    """Serve the load's counters on /metrics of a free port and yield its address."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = load.exposition(time.time()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


# Seconds. The comparison runs a while after the load ended, as the local
# runner's does after it waited for the stores and one more scrape.
LOAD_S = 10.0
AFTER_LOAD_S = 5.0
SENT_PER_S = 40.0


def test_path_comparison_rates_match_load() -> None:
    start = time.time() + 3
    load = SteadyLoad(start, start + LOAD_S, SENT_PER_S)
    with (
        serving_metrics(load) as address,
        running_prometheus({"router": [address]}, scrape_interval="1s") as prometheus,
    ):
        time.sleep(max(0.0, load.end + AFTER_LOAD_S - time.time()))

        result = summary.path_comparison(prometheus.url, load.start, load.end)

    grpc = result["paths"][names.PATH_GRPC]
    assert result["window_s"] == LOAD_S
    assert grpc["sent_rate"] == pytest.approx(SENT_PER_S, rel=0.03)
    assert grpc["stored_rate"] == pytest.approx(SENT_PER_S, rel=0.03)
    assert grpc["records_stored"] == math.floor(SENT_PER_S * LOAD_S)


def test_format_table_converts_seconds_to_ms() -> None:
    measures = {measure.key: None for measure in summary.MEASURES}
    result = {
        "window_s": 60,
        "paths": {
            names.PATH_GRPC: {
                **measures,
                "sent_rate": 12.345,
                "error_ratio": 0.0125,
                "latency_p99_s": 0.0421,
                "records_stored": 740.0,
            },
            names.PATH_REDIS: measures,
        },
    }

    lines = summary.format_table(result).splitlines()

    assert lines[0] == "Paths over 60 s of load (from Prometheus)"
    assert lines[1].split() == ["measure", "gRPC", "Redis"]
    # Columns are separated by two or more spaces; labels contain single ones.
    cells = [re.split(r" {2,}", line.strip()) for line in lines[2:]]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["records/s sent"] == ["12.35", "-"]
    assert rows["error ratio"] == ["1.25%", "-"]
    assert rows["latency p99 (ms)"] == ["42.1", "-"]
    assert rows["records stored"] == ["740", "-"]
    assert len(lines) == 2 + len(summary.MEASURES)
