"""Helpers to read recorded resources the way the cluster would see them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from covid_infra.mocked import SECRET_MARKER, Recording, Registration
from covid_infra.render import redact

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
DOCKER_IMAGE = "docker:index/image:Image"
COMMAND = "command:local:Command"
PROVIDER = "pulumi:providers:kubernetes"


def unwrap(value: Any) -> Any:
    """Recorded inputs with secret markers removed and the secret values kept."""
    if isinstance(value, dict):
        if set(value) == {SECRET_MARKER}:
            return unwrap(value[SECRET_MARKER])
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def manifest(registration: Registration) -> dict:
    """The object as a cluster would receive it, with secret values as a placeholder."""
    return redact(registration.inputs)


def workloads(recording: Recording) -> list[Registration]:
    return recording.of_type(DEPLOYMENT) + recording.of_type(STATEFULSET)


def pod_spec(registration: Registration) -> dict:
    return manifest(registration)["spec"]["template"]["spec"]


def containers(registration: Registration) -> Iterator[dict]:
    spec = pod_spec(registration)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def waits_for(
    recording: Recording, dependent: Registration, dependency: Registration
) -> bool:
    return dependency.urn in recording.all_dependencies(dependent.urn)
