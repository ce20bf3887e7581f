"""Stack settings, read once from Pulumi config into a typed, frozen object.

Every key lives in the `covid` namespace and is camelCase, for example
`covid:clusterKind`. Secrets are not read here: see `credentials.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import pulumi
from covid_common import names
from covid_common.config import LOG_LEVELS, parse_route_weights

from covid_infra import versions

CONFIG_NAMESPACE = "covid"

# RFC 1123 host name, as an Ingress rule's host must be.
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ClusterKind(StrEnum):
    """Target of the stack: a kind cluster it creates, or an existing cluster."""

    KIND = "kind"
    EXISTING = "existing"


class SettingsError(ValueError):
    """A missing or invalid stack config key; the message names the key."""

    def __init__(self, key: str, problem: str):
        self.key = key
        super().__init__(f"config key {CONFIG_NAMESPACE}:{key} {problem}")


@dataclass(frozen=True)
class Settings:
    cluster_kind: ClusterKind
    # "major.minor" of the target cluster, e.g. "1.34".
    kubernetes_version: str
    # Host name of the Ingress rules; Grafana is served on grafana.<ingress_host>.
    ingress_host: str
    # Path name -> weight, as the router's ROUTE_WEIGHTS expects them.
    route_weights: Mapping[str, int]
    app_namespace: str
    log_level: str
    replicas: int
    # kind stacks only.
    kind_cluster_name: str
    # existing stacks only: image registry ("registry.example.com/team"), and the
    # kubeconfig (path or content) and context the provider uses; None means the
    # usual kubeconfig lookup and its current context.
    registry: str | None
    registry_username: str | None
    kubeconfig: str | None
    kube_context: str | None
    # Platform the images are built for, e.g. "linux/amd64"; None builds for the
    # local Docker engine's own platform, which is also the kind node's.
    image_platform: str | None
    # Storage class of the MongoDB and Redis volumes; None uses the cluster default.
    storage_class: str | None
    # True when covid:mongoUrl (a secret) points at a MongoDB outside the cluster,
    # so no MongoDB StatefulSet is declared.
    external_mongo: bool

    @property
    def ingress_url(self) -> str:
        return f"http://{self.ingress_host}"

    @property
    def grafana_host(self) -> str:
        return f"grafana.{self.ingress_host}"


def load_settings(config: pulumi.Config | None = None) -> Settings:
    """Read and check the plain stack settings; raise SettingsError on a bad one."""
    config = config or pulumi.Config(CONFIG_NAMESPACE)

    kind_text = config.get("clusterKind") or ClusterKind.KIND.value
    try:
        cluster_kind = ClusterKind(kind_text)
    except ValueError:
        choices = ", ".join(kind.value for kind in ClusterKind)
        raise SettingsError(
            "clusterKind", f"is {kind_text!r}; expected {choices}"
        ) from None

    kubernetes_version = (
        config.get("kubernetesVersion") or versions.DEFAULT_KUBERNETES_VERSION
    )
    if not re.fullmatch(r"1\.\d{2}", kubernetes_version):
        raise SettingsError(
            "kubernetesVersion",
            f"is {kubernetes_version!r}; expected major.minor like 1.34",
        )
    if (
        cluster_kind is ClusterKind.KIND
        and kubernetes_version not in versions.KIND_NODE_IMAGES
    ):
        known = ", ".join(sorted(versions.KIND_NODE_IMAGES))
        raise SettingsError(
            "kubernetesVersion", f"is {kubernetes_version}; kind stacks support {known}"
        )

    ingress_host = config.get("ingressHost") or "localhost"
    if not _HOST_RE.match(ingress_host):
        raise SettingsError(
            "ingressHost", f"is {ingress_host!r}; expected a DNS host name"
        )

    registry = config.get("registry")
    if cluster_kind is ClusterKind.EXISTING and not registry:
        raise SettingsError(
            "registry", "is required for an existing cluster, e.g. ghcr.io/your-team"
        )

    namespace = config.get("namespace") or "covid"
    if not _DNS_LABEL_RE.match(namespace):
        raise SettingsError("namespace", f"is {namespace!r}; expected a DNS label")

    kind_cluster_name = config.get("kindClusterName") or "covid-ingest"
    if not _DNS_LABEL_RE.match(kind_cluster_name):
        raise SettingsError(
            "kindClusterName", f"is {kind_cluster_name!r}; expected a DNS label"
        )

    log_level = (config.get("logLevel") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(
            "logLevel", f"is {log_level!r}; expected one of {LOG_LEVELS}"
        )

    replicas = config.get_int("replicas")
    if replicas is None:
        replicas = 1
    if not 1 <= replicas <= 20:
        raise SettingsError("replicas", f"is {replicas}; expected 1 to 20")

    return Settings(
        cluster_kind=cluster_kind,
        kubernetes_version=kubernetes_version,
        ingress_host=ingress_host,
        route_weights=_route_weights(config.get_object("routeWeights")),
        app_namespace=namespace,
        log_level=log_level,
        replicas=replicas,
        kind_cluster_name=kind_cluster_name,
        registry=registry.rstrip("/") if registry else None,
        registry_username=config.get("registryUsername"),
        kubeconfig=config.get("kubeconfig"),
        kube_context=config.get("kubeContext"),
        image_platform=config.get("imagePlatform"),
        storage_class=config.get("storageClass"),
        external_mongo=config.get_secret("mongoUrl") is not None,
    )


def _route_weights(raw: object) -> dict[str, int]:
    """Check covid:routeWeights (a map like {grpc: 50}) as the router does."""
    if raw is None:
        raw = {path: 50 for path in names.PATHS}
    if not isinstance(raw, Mapping):
        raise SettingsError(
            "routeWeights", f"is {raw!r}; expected a map like {{grpc: 50}}"
        )
    text = ",".join(f"{path}={weight}" for path, weight in raw.items())
    try:
        return parse_route_weights(text)
    except ValueError as error:
        raise SettingsError("routeWeights", f"is invalid: {error}") from None
