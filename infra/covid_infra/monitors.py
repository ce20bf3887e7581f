"""What Prometheus and Grafana read on the cluster: monitors, rules, dashboards.

The dashboards and alert rules come from the same code the local stack checks
(`observability.dashboards`, `observability.rules`). This module only wraps them
in the objects that the Prometheus Operator and the Grafana sidecar pick up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from covid_common import names

from covid_infra.objects import LINKERD_ADMIN_PORT, PART_OF, labels, selector_labels
from covid_infra.platform.monitoring import DASHBOARD_LABEL, DASHBOARD_LABEL_VALUE
from observability.dashboards import all_dashboards
from observability.rules import rule_groups

MONITORING_API = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "15s"
# Container port name Linkerd gives the proxy's admin server.
LINKERD_ADMIN_PORT_NAME = "linkerd-admin"


def service_monitor_spec(service: names.Service) -> dict:
    return {
        "selector": {"matchLabels": selector_labels(service.name)},
        "endpoints": [
            {"port": "http", "path": names.METRICS_ROUTE, "interval": SCRAPE_INTERVAL}
        ],
    }


def linkerd_proxy_pod_monitor_spec() -> dict:
    """Scrape every meshed pod's proxy, in any namespace, on its admin port."""
    return {
        "namespaceSelector": {"any": True},
        "selector": {
            "matchExpressions": [
                {"key": "linkerd.io/control-plane-ns", "operator": "Exists"}
            ]
        },
        "podMetricsEndpoints": [
            {
                "port": LINKERD_ADMIN_PORT_NAME,
                "path": "/metrics",
                "interval": SCRAPE_INTERVAL,
                # The proxy does not label its metrics with its workload. The
                # dashboards group by `deployment`, so it is copied from the pod
                # label that the proxy injector sets, as Linkerd's own scrape
                # configuration does.
                "relabelings": [
                    {
                        "sourceLabels": [
                            "__meta_kubernetes_pod_label_linkerd_io_proxy_deployment"
                        ],
                        "targetLabel": "deployment",
                    },
                ],
            }
        ],
    }


def dashboard_config_map_name(file_name: str) -> str:
    stem = file_name.removesuffix(".json").lower()
    return "dashboard-" + re.sub(r"[^a-z0-9-]+", "-", stem).strip("-")


@dataclass(frozen=True)
class MonitorsArgs:
    app_namespace: str
    monitoring_namespace: str
    services: tuple[names.Service, ...]
    # kube-prometheus-stack, which installs the CRDs and the Grafana sidecar.
    monitoring: pulumi.Resource
    # Anything else to wait for, such as the application namespace.
    depends_on: tuple[pulumi.Resource, ...] = ()


class Monitors(pulumi.ComponentResource):
    """ServiceMonitors, the Linkerd proxy PodMonitor, alert rules and dashboards."""

    def __init__(
        self, name: str, args: MonitorsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("covid-ingest:observability:Monitors", name, None, opts)
        after_crds = pulumi.ResourceOptions(
            parent=self, depends_on=[args.monitoring, *args.depends_on]
        )

        for service in args.services:
            k8s.apiextensions.CustomResource(
                f"service-monitor-{service.name}",
                api_version=MONITORING_API,
                kind="ServiceMonitor",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=service.name,
                    namespace=args.app_namespace,
                    labels=labels(service.name, "monitoring"),
                ),
                spec=service_monitor_spec(service),
                opts=after_crds,
            )

        k8s.apiextensions.CustomResource(
            "pod-monitor-linkerd-proxies",
            api_version=MONITORING_API,
            kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="linkerd-proxies",
                namespace=args.monitoring_namespace,
                labels=labels("linkerd-proxies", "monitoring"),
            ),
            spec=linkerd_proxy_pod_monitor_spec(),
            opts=after_crds,
        )

        k8s.apiextensions.CustomResource(
            "prometheus-rules",
            api_version=MONITORING_API,
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=PART_OF,
                namespace=args.monitoring_namespace,
                labels=labels(PART_OF, "alerting"),
            ),
            spec=rule_groups(),
            opts=after_crds,
        )

        dashboards = all_dashboards()
        for file_name, model in sorted(dashboards.items()):
            config_map_name = dashboard_config_map_name(file_name)
            k8s.core.v1.ConfigMap(
                config_map_name,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=config_map_name,
                    namespace=args.monitoring_namespace,
                    labels={
                        **labels(config_map_name, "dashboard"),
                        DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE,
                    },
                ),
                data={file_name: json.dumps(model, indent=1, sort_keys=True)},
                opts=after_crds,
            )
        self.register_outputs(
            {"dashboards": sorted(dashboards), "admin_port": LINKERD_ADMIN_PORT}
        )
