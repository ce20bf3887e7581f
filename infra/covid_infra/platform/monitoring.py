"""kube-prometheus-stack: Prometheus, Alertmanager and Grafana."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from covid_infra import versions
from covid_infra.platform import helm
from covid_infra.platform.ingress_controller import INGRESS_CLASS
from covid_infra.settings import ClusterKind, Settings

GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER = "admin"
# The Grafana sidecar loads every ConfigMap with this label as a dashboard.
DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_LABEL_VALUE = "1"


def kube_prometheus_stack_values(settings: Settings) -> dict[str, Any]:
    values: dict[str, Any] = {
        "prometheus": {
            "prometheusSpec": {
                # Select every ServiceMonitor, PodMonitor, Probe and PrometheusRule
                # in the cluster, not only those carrying this release's Helm labels.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "retention": "7d",
                "resources": {
                    "requests": {"cpu": "200m", "memory": "512Mi"},
                    "limits": {"cpu": "2", "memory": "2Gi"},
                },
            }
        },
        "grafana": {
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": DASHBOARD_LABEL,
                    "labelValue": DASHBOARD_LABEL_VALUE,
                    "searchNamespace": "ALL",
                }
            },
            "ingress": {
                "enabled": True,
                "ingressClassName": INGRESS_CLASS,
                "hosts": [settings.grafana_host],
                "path": "/",
                "pathType": "Prefix",
            },
        },
    }
    if settings.cluster_kind is ClusterKind.KIND:
        # kind binds these control-plane components to the node's loopback
        # address, so Prometheus cannot scrape them and their alerts would fire
        # forever.
        for component in (
            "kubeControllerManager",
            "kubeScheduler",
            "kubeEtcd",
            "kubeProxy",
        ):
            values[component] = {"enabled": False}
    return values


@dataclass(frozen=True)
class MonitoringArgs:
    settings: Settings
    namespace: pulumi.Input[str]
    grafana_admin_password: pulumi.Output[str]


class Monitoring(pulumi.ComponentResource):
    """The Grafana admin Secret, then the kube-prometheus-stack release."""

    release: pulumi.Resource

    def __init__(
        self,
        name: str,
        args: MonitoringArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("covid-ingest:platform:Monitoring", name, None, opts)
        admin = k8s.core.v1.Secret(
            "grafana-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=GRAFANA_ADMIN_SECRET, namespace=args.namespace
            ),
            type="Opaque",
            string_data={
                "admin-user": GRAFANA_ADMIN_USER,
                "admin-password": args.grafana_admin_password,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = helm.release(
            "kube-prometheus-stack",
            versions.KUBE_PROMETHEUS_STACK,
            args.namespace,
            kube_prometheus_stack_values(args.settings),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[admin]),
            timeout_s=900,
        )
        self.register_outputs({"grafana_url": f"http://{args.settings.grafana_host}"})
