"""Building blocks shared by every workload the program declares."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_kubernetes as k8s

PART_OF = "covid-ingest"
# Linkerd's proxy injector adds its sidecar to pods with this annotation.
MESHED = {"linkerd.io/inject": "enabled"}
# Port of each Linkerd proxy's admin server, where it serves its metrics.
LINKERD_ADMIN_PORT = 4191


def selector_labels(name: str) -> dict[str, str]:
    """Labels that Services and NetworkPolicies select a workload's pods by."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def labels(name: str, component: str) -> dict[str, str]:
    return {
        **selector_labels(name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "pulumi",
    }


@dataclass(frozen=True)
class Resources:
    """CPU and memory requests and limits of one container."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def to_args(self) -> k8s.core.v1.ResourceRequirementsArgs:
        return k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": self.cpu_request, "memory": self.memory_request},
            limits={"cpu": self.cpu_limit, "memory": self.memory_limit},
        )


def pod_security_context(uid: int) -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def container_security_context(uid: int) -> k8s.core.v1.SecurityContextArgs:
    """Non-root, read-only root file system, no capabilities or privilege escalation."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def secret_env(name: str, secret: str, key: str) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)
        ),
    )


def empty_dir(
    name: str, mount_path: str
) -> tuple[k8s.core.v1.VolumeArgs, k8s.core.v1.VolumeMountArgs]:
    return (
        k8s.core.v1.VolumeArgs(
            name=name, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()
        ),
        k8s.core.v1.VolumeMountArgs(name=name, mount_path=mount_path),
    )
