"""F5 NGINX Ingress Controller (OSS), meshed by Linkerd, serving ingress class nginx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from covid_infra import versions
from covid_infra.cluster import INGRESS_NODE_LABEL
from covid_infra.platform import helm
from covid_infra.settings import ClusterKind, Settings

INGRESS_CLASS = "nginx"


def nginx_ingress_values(settings: Settings) -> dict[str, Any]:
    """Build nginx-ingress values; they must validate against its values.schema.json."""
    controller: dict[str, Any] = {
        "ingressClass": {"name": INGRESS_CLASS, "create": True},
        # The proxy gives the hop from the controller to the router mTLS and
        # per-route metrics.
        "pod": {"annotations": {"linkerd.io/inject": "enabled"}},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        # The controller would otherwise report usage data to F5.
        "telemetryReporting": {"enable": False},
    }
    if settings.cluster_kind is ClusterKind.KIND:
        # kind maps the host's ports 80 and 443 to the node labelled ingress-ready,
        # so the controller listens on that node's ports directly.
        controller["hostPort"] = {"enable": True, "http": 80, "https": 443}
        controller["nodeSelector"] = {INGRESS_NODE_LABEL: "true"}
        controller["service"] = {"type": "NodePort"}
    else:
        controller["service"] = {"type": "LoadBalancer"}

    return {
        "controller": controller,
        # Exporter metrics of the controller, scraped through the ServiceMonitor.
        "prometheus": {
            "create": True,
            "service": {"create": True},
            "serviceMonitor": {"create": True},
        },
    }


@dataclass(frozen=True)
class IngressControllerArgs:
    settings: Settings
    namespace: pulumi.Input[str]
    # Linkerd's control plane must run first: its webhook injects the proxy.
    linkerd: pulumi.Resource
    # The ServiceMonitor CRD comes from kube-prometheus-stack.
    monitoring: pulumi.Resource


class IngressController(pulumi.ComponentResource):
    release: pulumi.Resource

    def __init__(
        self,
        name: str,
        args: IngressControllerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("covid-ingest:platform:IngressController", name, None, opts)
        self.release = helm.release(
            "nginx-ingress",
            versions.NGINX_INGRESS,
            args.namespace,
            nginx_ingress_values(args.settings),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.linkerd, args.monitoring]
            ),
        )
        self.register_outputs({"ingress_class": INGRESS_CLASS})
