"""Grafana dashboards as code.

Each dashboard is a `Dashboard` value: rows of panels, each panel a list of PromQL
targets. `DASHBOARDS` is the one list of them, so tests can walk every query and
`all_dashboards()` can render every Grafana JSON model from it. Panels marked
`needs_cluster` query metrics that only exist on Kubernetes (Linkerd proxies,
cAdvisor); the local stack cannot return data for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from covid_common import names

from observability import queries

# Grafana's interval variable for rate() windows. Grafana sets it to at least
# four scrape intervals, so a rate spans two or more samples.
RATE = "$__rate_interval"
DATASOURCE_VARIABLE = "datasource"
DATASOURCE_REF = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}
# Panel grid: Grafana's dashboard is 24 columns wide.
GRID_WIDTH = 24
PANEL_HEIGHT = 8
# schemaVersion of the dashboard JSON model; Grafana migrates lower versions
# when it loads a dashboard.
SCHEMA_VERSION = 39
TAGS = ("covid",)


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    # "timeseries" or "stat".
    kind: str = "timeseries"
    width: int = 12
    needs_cluster: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A Grafana query variable whose values come from a label of a metric."""

    name: str
    label: str
    # Series selector whose label values become the variable's options.
    selector: str
    label_name: str
    needs_cluster: bool = False
    include_all: bool = False

    @property
    def query(self) -> str:
        return f"label_values({self.selector}, {self.label_name})"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    file_name: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = field(default_factory=tuple)

    @property
    def panels(self) -> Iterator[Panel]:
        for row in self.rows:
            yield from row.panels


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL target of one panel, with where it sits."""

    dashboard_uid: str
    panel_title: str
    expr: str
    needs_cluster: bool


def _per_path(build, legend_suffix: str = "") -> tuple[Target, ...]:
    """Build one target per path, so each panel shows the two paths side by side."""
    return tuple(
        Target(build(path), f"{queries.PATH_TITLES[path]}{legend_suffix}")
        for path in names.PATHS
    )


def _per_path_quantiles(build, quantiles: tuple[float, ...]) -> tuple[Target, ...]:
    targets = []
    for path in names.PATHS:
        for quantile in quantiles:
            legend = f"{queries.PATH_TITLES[path]} p{round(quantile * 100)}"
            targets.append(Target(build(path, quantile, RATE), legend))
    return tuple(targets)


def _overview() -> Dashboard:
    traffic = Row(
        "Traffic and errors per path",
        (
            Panel(
                "Request rate",
                "Requests per second answered by each path's entry service on /cases.",
                _per_path(lambda path: queries.path_request_rate(path, RATE)),
                unit="reqps",
            ),
            Panel(
                "Error ratio",
                "Share of records the router failed to hand to the path "
                "(timeouts, refused connections, 5xx responses).",
                _per_path(lambda path: queries.path_error_ratio(path, RATE)),
                unit="percentunit",
            ),
            Panel(
                "Records routed",
                "Records per second the router handed to each path.",
                _per_path(lambda path: queries.path_routed_rate(path, RATE)),
                unit="ops",
            ),
            Panel(
                "Records stored",
                "New records per second written to MongoDB and the Redis views "
                "by each path's storing process.",
                _per_path(lambda path: queries.path_stored_rate(path, RATE)),
                unit="ops",
            ),
        ),
    )
    latency = Row(
        "Latency per path",
        (
            Panel(
                "Request latency p50 / p95 / p99",
                "Duration of /cases requests at each path's entry service.",
                _per_path_quantiles(queries.path_latency_quantile, (0.5, 0.95, 0.99)),
                unit="s",
            ),
            Panel(
                "End-to-end lag p50 / p99",
                "Time from the router's receipt of a record to its storage.",
                _per_path_quantiles(queries.path_lag_quantile, (0.5, 0.99)),
                unit="s",
            ),
        ),
    )
    storage = Row(
        "Storage per path",
        (
            Panel(
                "Duplicates",
                "Records that arrived again with a record_id already stored "
                "(client or router retries).",
                _per_path(lambda path: queries.path_duplicate_rate(path, RATE)),
                unit="ops",
            ),
            Panel(
                "Storage errors",
                "Failed MongoDB or Redis writes per second.",
                _per_path(lambda path: queries.path_storage_error_rate(path, RATE)),
                unit="ops",
            ),
        ),
    )
    redis_path = Row(
        "Redis path health",
        (
            Panel(
                "Unheard publishes",
                "PUBLISH calls that reached no subscriber in the interval: "
                "records lost on the Redis path.",
                (Target(queries.unheard_publish_increase(RATE), "unheard"),),
                width=8,
            ),
            Panel(
                "Subscriber reconnects",
                "Times redis-sub reconnected to Redis in the interval.",
                (Target(queries.subscriber_reconnect_increase(RATE), "reconnects"),),
                width=8,
            ),
            Panel(
                "Subscriber silence",
                "Seconds since redis-sub last received a message or a heartbeat.",
                (Target(queries.subscriber_silence_seconds(), "silence"),),
                unit="s",
                width=8,
            ),
        ),
    )
    router = Row(
        "Router",
        (
            Panel(
                "Downstream errors by kind",
                "Failed forwards from the router per path and kind "
                "(timeout, connection, unavailable, bad_status).",
                (
                    Target(
                        "sum by (path, kind) (rate("
                        f"covid_router_downstream_errors_total[{RATE}]))"
                        " or vector(0)",
                        "{{path}} {{kind}}",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Records rejected by reason",
                "Requests the router rejected before routing (invalid input, "
                "body too large, ...).",
                (
                    Target(
                        "sum by (reason) (rate("
                        f"covid_router_records_rejected_total[{RATE}]))"
                        " or vector(0)",
                        "{{reason}}",
                    ),
                ),
                unit="ops",
            ),
        ),
    )
    return Dashboard(
        uid="covid-paths-overview",
        title="COVID ingestion: gRPC vs Redis",
        file_name="covid-paths-overview.json",
        description="The two ingestion paths side by side.",
        rows=(traffic, latency, storage, redis_path, router),
    )


_SERVICE = 'service="$service"'
_SERVICE_API = f'{_SERVICE}, route!~"{queries.INTERNAL_ROUTES_RE}"'


def _per_service() -> Dashboard:
    http = Row(
        "HTTP",
        (
            Panel(
                "Requests by route and status",
                "Requests per second, health probes and scrapes included.",
                (
                    Target(
                        "sum by (route, status) (rate(covid_http_requests_total"
                        f"{{{_SERVICE}}}[{RATE}]))",
                        "{{route}} {{status}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "5xx ratio",
                "Share of API requests (probes and scrapes left out) "
                "answered with a 5xx status.",
                (
                    Target(
                        "(sum(rate(covid_http_requests_total"
                        f'{{{_SERVICE_API}, status=~"5.."}}[{RATE}])) or vector(0))'
                        " / sum(rate(covid_http_requests_total"
                        f"{{{_SERVICE_API}}}[{RATE}]))",
                        "5xx",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "API latency p50 / p95 / p99",
                "Request duration of the API routes (probes and scrapes left out).",
                tuple(
                    Target(
                        f"histogram_quantile({q}, sum by (le) (rate("
                        "covid_http_request_duration_seconds_bucket"
                        f"{{{_SERVICE_API}}}[{RATE}])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ),
                unit="s",
            ),
            Panel(
                "Scrape target up",
                "1 while Prometheus can scrape every instance of the service.",
                (Target('min(up{job="$service"})', "up"),),
                kind="stat",
            ),
        ),
    )
    grpc = Row(
        "gRPC server (grpc-server only)",
        (
            Panel(
                "gRPC requests by method and code",
                "Requests per second that grpc-server answered.",
                (
                    Target(
                        "sum by (method, code) (rate(covid_grpc_server_requests_total"
                        f'{{job="$service"}}[{RATE}]))',
                        "{{method}} {{code}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "gRPC latency p50 / p99",
                "Handling time of grpc-server calls.",
                tuple(
                    Target(
                        f"histogram_quantile({q}, sum by (le, method) (rate("
                        "covid_grpc_server_request_duration_seconds_bucket"
                        f'{{job="$service"}}[{RATE}])))',
                        f"{{{{method}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ),
                unit="s",
            ),
        ),
    )
    resources = Row(
        "Resources (Kubernetes)",
        (
            Panel(
                "CPU",
                "CPU cores used by the service's containers (cAdvisor).",
                (
                    Target(
                        "sum by (pod) (rate(container_cpu_usage_seconds_total"
                        '{namespace="$namespace", pod=~"$service-.*", container!=""}'
                        f"[{RATE}]))",
                        "{{pod}}",
                    ),
                ),
                needs_cluster=True,
            ),
            Panel(
                "Memory",
                "Working set of the service's containers (cAdvisor).",
                (
                    Target(
                        "sum by (pod) (container_memory_working_set_bytes"
                        '{namespace="$namespace", pod=~"$service-.*", container!=""})',
                        "{{pod}}",
                    ),
                ),
                unit="bytes",
                needs_cluster=True,
            ),
        ),
    )
    return Dashboard(
        uid="covid-service",
        title="COVID ingestion: per service",
        file_name="covid-service.json",
        description="HTTP, gRPC and resource metrics of one service.",
        rows=(http, grpc, resources),
        variables=(
            # Scrape jobs are named after the services, locally and on the
            # cluster, so `up` lists every service, web or not.
            Variable(
                "service",
                "Service",
                f'up{{job=~"{"|".join(s.name for s in names.ALL_SERVICES)}"}}',
                "job",
            ),
            Variable(
                "namespace",
                "Namespace",
                "kube_pod_info",
                "namespace",
                needs_cluster=True,
            ),
        ),
    )


# Linkerd proxy metrics of the app pods' inbound side. The `deployment` label is
# not emitted by the proxy: the scrape job copies it from the pod label
# linkerd.io/proxy-deployment, as Linkerd's own Prometheus configuration does.
_INBOUND = 'namespace="$namespace", direction="inbound"'


def _linkerd() -> Dashboard:
    golden = Row(
        "Golden metrics (inbound, per deployment)",
        (
            Panel(
                "Success rate",
                "Share of responses Linkerd classified as success.",
                (
                    Target(
                        "sum by (deployment) (rate(response_total"
                        f'{{{_INBOUND}, classification="success"}}[{RATE}]))'
                        " / sum by (deployment) (rate(response_total"
                        f"{{{_INBOUND}}}[{RATE}]))",
                        "{{deployment}}",
                    ),
                ),
                unit="percentunit",
                needs_cluster=True,
            ),
            Panel(
                "Requests per second",
                "Requests the proxies received.",
                (
                    Target(
                        "sum by (deployment) (rate(request_total"
                        f"{{{_INBOUND}}}[{RATE}]))",
                        "{{deployment}}",
                    ),
                ),
                unit="reqps",
                needs_cluster=True,
            ),
        )
        + tuple(
            Panel(
                f"Latency p{round(q * 100)}",
                "Time to first byte of the response, measured by the proxy.",
                (
                    Target(
                        f"histogram_quantile({q}, sum by (le, deployment) (rate("
                        f"response_latency_ms_bucket{{{_INBOUND}}}[{RATE}])))",
                        "{{deployment}}",
                    ),
                ),
                unit="ms",
                width=8,
                needs_cluster=True,
            )
            for q in (0.5, 0.95, 0.99)
        ),
    )
    return Dashboard(
        uid="covid-linkerd",
        title="COVID ingestion: Linkerd golden metrics",
        file_name="covid-linkerd.json",
        description="Success rate, request rate and latency of the app pods, "
        "measured by their Linkerd proxies.",
        rows=(golden,),
        variables=(
            Variable(
                "namespace",
                "Namespace",
                "request_total",
                "namespace",
                needs_cluster=True,
            ),
        ),
    )


DASHBOARDS: tuple[Dashboard, ...] = (_overview(), _per_service(), _linkerd())


def all_panel_queries() -> list[PanelQuery]:
    """List every PromQL target of every dashboard panel."""
    found = []
    for dashboard in DASHBOARDS:
        for panel in dashboard.panels:
            for target in panel.targets:
                found.append(
                    PanelQuery(
                        dashboard.uid, panel.title, target.expr, panel.needs_cluster
                    )
                )
    return found


_VARIABLE_RE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand_variables(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables ($name, ${name}) in `expr` with `values`.

    Raises KeyError naming the variable when `values` lacks one, so a caller that
    runs a panel query outside Grafana learns which value it must supply.
    """

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE_RE.sub(replace, expr)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    targets = [
        {
            "refId": chr(ord("A") + index),
            "datasource": DATASOURCE_REF,
            "expr": target.expr,
            "legendFormat": target.legend,
            "range": True,
        }
        for index, target in enumerate(panel.targets)
    ]
    model = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE_REF,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": PANEL_HEIGHT},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
    }
    if panel.kind == "stat":
        model["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}}
    if panel.needs_cluster:
        model["description"] += " Kubernetes only."
    return model


def _variable_json(variable: Variable) -> dict:
    return {
        "type": "query",
        "name": variable.name,
        "label": variable.label,
        "datasource": DATASOURCE_REF,
        "query": {"query": variable.query, "refId": f"{variable.name}-values"},
        "definition": variable.query,
        "refresh": 2,
        "includeAll": variable.include_all,
        "multi": False,
        "sort": 1,
    }


def _datasource_variable_json() -> dict:
    return {
        "type": "datasource",
        "name": DATASOURCE_VARIABLE,
        "label": "Data source",
        "query": "prometheus",
        "refresh": 1,
        "current": {},
    }


def dashboard_json(dashboard: Dashboard) -> dict:
    """Render one dashboard as a Grafana dashboard JSON model."""
    panels = []
    panel_id = 1
    y = 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x = 0
                y += PANEL_HEIGHT
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
        y += PANEL_HEIGHT
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(TAGS),
        "timezone": "browser",
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [_datasource_variable_json()]
            + [_variable_json(variable) for variable in dashboard.variables]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def all_dashboards() -> dict[str, dict]:
    """Return every dashboard's Grafana JSON model, keyed by its file name."""
    return {dashboard.file_name: dashboard_json(dashboard) for dashboard in DASHBOARDS}
