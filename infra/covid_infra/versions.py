"""Every version the cluster installs, pinned in one place.

Helm charts carry their repository next to their version, so a chart upgrade is a
one-line change here and the offline tests check the new version's values.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HelmChart:
    """A Helm chart at a fixed version, and where Helm fetches it from."""

    name: str
    version: str
    # An https:// chart repository, or None when `chart` is a full oci:// reference.
    repository: str | None
    chart: str

    @property
    def values_dir(self) -> str:
        """Folder of this chart's default values under the charts directory."""
        return f"{self.name}/{self.version}"


NGINX_INGRESS = HelmChart(
    name="nginx-ingress",
    version="2.6.4",  # F5 NGINX Ingress Controller (OSS) 5.5.4
    repository=None,
    chart="oci://ghcr.io/nginx/charts/nginx-ingress",
)
LINKERD_CRDS = HelmChart(
    name="linkerd-crds",
    version="2026.8.3",  # Linkerd edge-26.8.3
    repository="https://helm.linkerd.io/edge",
    chart="linkerd-crds",
)
LINKERD_CONTROL_PLANE = HelmChart(
    name="linkerd-control-plane",
    version="2026.8.3",  # Linkerd edge-26.8.3
    repository="https://helm.linkerd.io/edge",
    chart="linkerd-control-plane",
)
KUBE_PROMETHEUS_STACK = HelmChart(
    name="kube-prometheus-stack",
    version="88.5.3",
    repository="https://prometheus-community.github.io/helm-charts",
    chart="kube-prometheus-stack",
)
# Subchart of kube-prometheus-stack 88.5.3: it is installed by that chart, never on
# its own, but its values.yaml defines the keys under `grafana.`.
GRAFANA_SUBCHART = HelmChart(
    name="grafana",
    version="12.11.1",
    repository="https://grafana-community.github.io/helm-charts",
    chart="grafana",
)

HELM_CHARTS = (
    NGINX_INGRESS,
    LINKERD_CRDS,
    LINKERD_CONTROL_PLANE,
    KUBE_PROMETHEUS_STACK,
)

# Gateway API standard channel. Linkerd's Gateway API page lists 1.1.1 to 1.2.1 as
# compatible with Linkerd 2.18 and 2.19, and linkerd-crds 2026.8.3 leaves installing
# them to the cluster owner (installGatewayAPI: false).
# NOTE: no compatibility table for edge-26.8.3 was found; 1.2.1 is the newest
# release the published table covers.
GATEWAY_API_VERSION = "v1.2.1"
GATEWAY_API_STANDARD_INSTALL_URL = (
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/"
    f"{GATEWAY_API_VERSION}/standard-install.yaml"
)

# Data store images, official Docker Hub images pinned by tag.
MONGO_IMAGE = "mongo:8.0.4"
REDIS_IMAGE = "redis:7.4.2"

# Kubernetes version of each stack: the kind node image, and the schema version the
# offline tests validate every declared object against.
DEFAULT_KUBERNETES_VERSION = "1.34"
# kind node images are published per Kubernetes patch release.
KIND_NODE_IMAGES = {
    "1.34": "kindest/node:v1.34.0",
    "1.33": "kindest/node:v1.33.1",
}
