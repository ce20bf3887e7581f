"""ServiceAccount + Deployment + Service for one service, the same way for every unit.

Every container runs as uid 10001 on a read-only root file system, with /tmp and
the prometheus-client multiprocess directory on emptyDir volumes, probes on the
names.py routes, requests and limits, and a Linkerd proxy beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from covid_common import names

from covid_infra.objects import (
    MESHED,
    Resources,
    container_security_context,
    empty_dir,
    labels,
    pod_security_context,
    secret_env,
    selector_labels,
)

APP_UID = 10001
# Folder in which gunicorn's workers share prometheus-client metric files.
MULTIPROC_DIR = "/var/run/prometheus-multiproc"
GUNICORN_WORKERS = "2"
# GUNICORN_THREADS is left unset so that covid_common.gunicorn_conf picks each
# service's thread count, as on the local stack (the router needs many more).
DEFAULT_RESOURCES = Resources(
    cpu_request="100m", memory_request="128Mi", cpu_limit="1", memory_limit="512Mi"
)


@dataclass(frozen=True)
class ImageRef:
    """An image reference, and what must finish before a node can run it."""

    ref: pulumi.Input[str]
    ready: tuple[pulumi.Resource, ...] = ()


@dataclass(frozen=True)
class SecretRef:
    secret: str
    key: str


@dataclass(frozen=True)
class AppContext:
    """Settings and dependencies shared by every unit of the application."""

    namespace: str
    replicas: int
    log_level: str
    # Resources every Deployment waits for: the mesh and the data stores.
    depends_on: tuple[pulumi.Resource, ...] = ()


@dataclass(frozen=True)
class WorkloadSpec:
    service: names.Service
    image: ImageRef
    # app.kubernetes.io/component label: "api", "grpc-path", "redis-path", "web".
    component: str
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, SecretRef] = field(default_factory=dict)
    resources: Resources = DEFAULT_RESOURCES


@dataclass(frozen=True)
class Workload:
    service_account: k8s.core.v1.ServiceAccount
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service


def service_url(service: names.Service, namespace: str) -> str:
    """Return the cluster-internal base URL of a service's HTTP port."""
    return f"http://{service.name}.{namespace}.svc.cluster.local:{service.http_port}"


def _is_gunicorn(service: names.Service) -> bool:
    return service.command[0] == "gunicorn"


def _environment(
    spec: WorkloadSpec, context: AppContext
) -> list[k8s.core.v1.EnvVarArgs]:
    service = spec.service
    plain = {
        names.Env.LOG_LEVEL: context.log_level,
        names.Env.HTTP_PORT: str(service.http_port),
    }
    if service.grpc_port is not None:
        plain[names.Env.GRPC_PORT] = str(service.grpc_port)
    if _is_gunicorn(service):
        plain[names.Env.PROMETHEUS_MULTIPROC_DIR] = MULTIPROC_DIR
        plain[names.Env.GUNICORN_WORKERS] = (
            str(service.gunicorn_workers)
            if service.gunicorn_workers
            else GUNICORN_WORKERS
        )
    plain.update(spec.env)

    env = [
        k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in plain.items()
    ]
    env.extend(
        secret_env(key, reference.secret, reference.key)
        for key, reference in spec.secret_env.items()
    )
    return env


def _probes(service: names.Service) -> dict[str, k8s.core.v1.ProbeArgs]:
    liveness = k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=names.HEALTH_ROUTE, port="http"),
        initial_delay_seconds=5,
        period_seconds=10,
        timeout_seconds=2,
        failure_threshold=3,
    )
    if service.grpc_port is not None:
        # The gRPC server's standard health service reports whether it is serving.
        readiness = k8s.core.v1.ProbeArgs(
            grpc=k8s.core.v1.GRPCActionArgs(port=service.grpc_port),
            period_seconds=5,
            timeout_seconds=2,
            failure_threshold=2,
        )
    else:
        readiness = k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=names.READY_ROUTE, port="http"),
            period_seconds=5,
            timeout_seconds=2,
            failure_threshold=2,
        )
    return {"liveness_probe": liveness, "readiness_probe": readiness}


def _ports(service: names.Service) -> tuple[list, list]:
    container_ports = [
        k8s.core.v1.ContainerPortArgs(name="http", container_port=service.http_port)
    ]
    service_ports = [
        k8s.core.v1.ServicePortArgs(
            name="http", port=service.http_port, target_port="http"
        )
    ]
    if service.grpc_port is not None:
        container_ports.append(
            k8s.core.v1.ContainerPortArgs(name="grpc", container_port=service.grpc_port)
        )
        service_ports.append(
            k8s.core.v1.ServicePortArgs(
                name="grpc",
                port=service.grpc_port,
                target_port="grpc",
                app_protocol="kubernetes.io/h2c",
            )
        )
    return container_ports, service_ports


def build_workload(
    parent: pulumi.Resource, spec: WorkloadSpec, context: AppContext
) -> Workload:
    """Declare one service's ServiceAccount, Deployment and Service under `parent`."""
    service = spec.service
    name = service.name
    metadata = k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=context.namespace, labels=labels(name, spec.component)
    )

    service_account = k8s.core.v1.ServiceAccount(
        f"{name}-sa",
        metadata=metadata,
        # The services never call the Kubernetes API; Linkerd's proxy gets its
        # identity token from a volume of its own.
        automount_service_account_token=False,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(context.depends_on)),
    )

    tmp_volume, tmp_mount = empty_dir("tmp", "/tmp")
    metrics_volume, metrics_mount = empty_dir("prometheus-multiproc", MULTIPROC_DIR)
    container_ports, service_ports = _ports(service)
    container = k8s.core.v1.ContainerArgs(
        name=name,
        image=spec.image.ref,
        image_pull_policy="IfNotPresent",
        command=list(service.command),
        ports=container_ports,
        env=_environment(spec, context),
        resources=spec.resources.to_args(),
        security_context=container_security_context(APP_UID),
        volume_mounts=[tmp_mount, metrics_mount],
        **_probes(service),
    )
    deployment = k8s.apps.v1.Deployment(
        name,
        metadata=metadata,
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=context.replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(name)),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=labels(name, spec.component),
                    annotations={
                        **MESHED,
                        # `kubectl logs` picks the service, not the proxy.
                        "kubectl.kubernetes.io/default-container": name,
                    },
                ),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=name,
                    automount_service_account_token=False,
                    security_context=pod_security_context(APP_UID),
                    containers=[container],
                    volumes=[tmp_volume, metrics_volume],
                ),
            ),
        ),
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[service_account, *spec.image.ready, *context.depends_on],
        ),
    )
    k8s_service = k8s.core.v1.Service(
        name,
        metadata=metadata,
        spec=k8s.core.v1.ServiceSpecArgs(
            selector=selector_labels(name), ports=service_ports
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(context.depends_on)),
    )
    return Workload(service_account, deployment, k8s_service)
