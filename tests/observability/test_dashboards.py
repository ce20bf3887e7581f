"""Dashboard JSON models: valid structure, templated datasource, known metrics.

Every PromQL query of every panel, every alert expression and every summary
query must parse (checked with promtool's parser) and may name only metrics the
services define in covid_common.metrics, or Prometheus' own `up`. Panels marked
as needing the cluster are checked for syntax only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from covid_common import metrics, names
from prometheus_client.metrics import MetricWrapperBase

from observability import __main__ as render
from observability import dashboards, queries, rules, summary
from tests.observability.promtools import check_expressions

DASHBOARD_MODELS = dashboards.all_dashboards()
# Values for Grafana's variables when a panel query runs outside Grafana.
VARIABLE_VALUES = {
    "__rate_interval": "1m",
    "service": names.ROUTER.name,
    "namespace": "covid",
    "datasource": "prometheus",
}
PROMETHEUS_METRICS = {"up"}
# Metrics that only exist on Kubernetes: Linkerd's proxies, cAdvisor and
# kube-state-metrics.
CLUSTER_METRICS = {
    "request_total",
    "response_total",
    "response_latency_ms_bucket",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "kube_pod_info",
}
# A metric name directly followed by a label matcher or a range selector.
_SELECTOR_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# The service metrics also appear bare, e.g. max(covid_..._seconds).
_SERVICE_METRIC_RE = re.compile(r"\bcovid_[a-zA-Z0-9_]+")


def _service_metric_names() -> set[str]:
    """Sample names that covid_common.metrics exposes, e.g. *_total, *_bucket."""
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
    }
    found = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                for suffix in suffixes[family.type]:
                    found.add(family.name + suffix)
    return found


SERVICE_METRICS = _service_metric_names()


def metric_names(expr: str) -> set[str]:
    found = set(_SERVICE_METRIC_RE.findall(expr))
    for name in _SELECTOR_RE.findall(expr):
        if name not in _PROMQL_WORDS:
            found.add(name)
    return found


def _panels(model: dict) -> list[dict]:
    return [panel for panel in model["panels"] if panel["type"] != "row"]


def test_dashboard_uids_unique() -> None:
    uids = [model["uid"] for model in DASHBOARD_MODELS.values()]

    assert len(uids) == len(set(uids))
    assert all(uids)


def test_dashboard_file_names_are_json() -> None:
    for file_name in DASHBOARD_MODELS:
        assert file_name.endswith(".json"), file_name


@pytest.mark.parametrize("file_name", sorted(DASHBOARD_MODELS))
def test_dashboard_is_json_serialisable(file_name: str) -> None:
    model = DASHBOARD_MODELS[file_name]

    assert json.loads(json.dumps(model)) == model


@pytest.mark.parametrize("file_name", sorted(DASHBOARD_MODELS))
def test_dashboard_has_datasource_variable(file_name: str) -> None:
    variables = DASHBOARD_MODELS[file_name]["templating"]["list"]
    datasource = [v for v in variables if v["name"] == dashboards.DATASOURCE_VARIABLE]

    assert len(datasource) == 1
    assert datasource[0]["type"] == "datasource"
    assert datasource[0]["query"] == "prometheus"


@pytest.mark.parametrize("file_name", sorted(DASHBOARD_MODELS))
def test_every_panel_has_datasource_and_targets(file_name: str) -> None:
    for panel in _panels(DASHBOARD_MODELS[file_name]):
        title = panel["title"]
        assert panel["datasource"] == dashboards.DATASOURCE_REF, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["expr"].strip(), title
            assert target["datasource"] == dashboards.DATASOURCE_REF, title


@pytest.mark.parametrize("file_name", sorted(DASHBOARD_MODELS))
def test_panel_ids_and_ref_ids_unique(file_name: str) -> None:
    model = DASHBOARD_MODELS[file_name]
    panel_ids = [panel["id"] for panel in model["panels"]]

    assert len(panel_ids) == len(set(panel_ids))
    for panel in _panels(model):
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("file_name", sorted(DASHBOARD_MODELS))
def test_panels_fit_grid(file_name: str) -> None:
    for panel in DASHBOARD_MODELS[file_name]["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= dashboards.GRID_WIDTH, panel["title"]


@pytest.mark.parametrize("file_name", sorted(DASHBOARD_MODELS))
def test_query_variables_are_defined(file_name: str) -> None:
    model = DASHBOARD_MODELS[file_name]
    defined = {variable["name"] for variable in model["templating"]["list"]}
    defined.add("__rate_interval")

    for panel in _panels(model):
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= defined, (panel["title"], used - defined)


def test_overview_path_rows_show_both_paths() -> None:
    """Every panel of the per-path rows has one series per path, side by side."""
    path_titles = [queries.PATH_TITLES[path] for path in names.PATHS]
    overview = next(d for d in dashboards.DASHBOARDS if d.uid == "covid-paths-overview")
    path_rows = [row for row in overview.rows if "per path" in row.title]

    assert path_rows
    for row in path_rows:
        for panel in row.panels:
            legends = " ".join(target.legend for target in panel.targets)
            for title in path_titles:
                assert title in legends, (panel.title, title)


def test_cluster_panels_are_marked() -> None:
    for query in dashboards.all_panel_queries():
        cluster_metrics = metric_names(query.expr) & CLUSTER_METRICS
        if cluster_metrics:
            assert query.needs_cluster, (query.panel_title, cluster_metrics)


def test_local_queries_name_service_metrics_only() -> None:
    known = SERVICE_METRICS | PROMETHEUS_METRICS
    for query in dashboards.all_panel_queries():
        if query.needs_cluster:
            continue
        unknown = metric_names(query.expr) - known
        assert not unknown, (query.panel_title, unknown)


def test_alert_expressions_name_known_metrics() -> None:
    known = SERVICE_METRICS | PROMETHEUS_METRICS
    for alert in rules.ALERTS:
        unknown = metric_names(alert.expr) - known
        assert not unknown, (alert.name, unknown)


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (le) (rate(foo_bucket{a="b"}[5m])) / on (x) bar[1m] + up{job="$j"}'
        " - max(covid_gauge_seconds)"
    )

    assert metric_names(expr) == {"foo_bucket", "bar", "up", "covid_gauge_seconds"}


def test_every_query_parses(tmp_path: Path) -> None:
    expressions = {}
    for query in dashboards.all_panel_queries():
        key = f"{query.dashboard_uid}: {query.panel_title}: {query.expr}"
        expressions[key] = dashboards.expand_variables(query.expr, VARIABLE_VALUES)
    for model in DASHBOARD_MODELS.values():
        for variable in model["templating"]["list"]:
            if variable["type"] == "query":
                # label_values() is Grafana's, not PromQL: check its selector.
                selector = re.fullmatch(
                    r"label_values\((.+), *(\w+)\)", variable["definition"]
                )
                assert selector, variable["definition"]
                expressions[variable["definition"]] = selector.group(1)
    for alert in rules.ALERTS:
        expressions[alert.name] = alert.expr
    for measure in summary.MEASURES:
        for path in names.PATHS:
            for index, expr in enumerate(measure.expressions(path, "60s")):
                expressions[f"{measure.key} {path} {index}"] = expr

    result = check_expressions(expressions, tmp_path)

    assert result.returncode == 0, result.output


def test_bad_query_fails_parse_check(tmp_path: Path) -> None:
    result = check_expressions(
        {"bad": "sum(rate(covid_http_requests_total[5m])"}, tmp_path
    )

    assert result.returncode != 0


def test_expand_variables_replaces_both_forms() -> None:
    expanded = dashboards.expand_variables(
        'rate(x{a="$service", b="${namespace}"}[$__rate_interval])', VARIABLE_VALUES
    )

    assert expanded == 'rate(x{a="router", b="covid"}[1m])'


def test_expand_variables_names_missing_variable() -> None:
    with pytest.raises(KeyError, match=r"\$missing"):
        dashboards.expand_variables('up{job="$missing"}', {})


def test_render_command_writes_files(tmp_path: Path) -> None:
    written = render.write_all(tmp_path / "out")

    names_written = sorted(path.name for path in written)
    assert names_written == sorted([*DASHBOARD_MODELS, render.RULES_FILE_NAME])
    for file_name, model in DASHBOARD_MODELS.items():
        assert json.loads((tmp_path / "out" / file_name).read_text()) == model
