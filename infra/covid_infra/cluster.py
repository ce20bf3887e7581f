"""The Kubernetes cluster and the provider that talks to it.

A kind stack creates its own cluster with the kind CLI (a local command that runs on
`pulumi up` and deletes the cluster on `pulumi destroy`). An existing stack only
builds a provider from the configured kubeconfig and context.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_command import local

from covid_infra import versions
from covid_infra.settings import ClusterKind, Settings

# Node label the ingress controller is scheduled on; the kind node that maps the
# host's ports 80 and 443 carries it.
INGRESS_NODE_LABEL = "ingress-ready"


def kind_config(settings: Settings) -> dict:
    """Build the kind config: one node that receives the host's ports 80 and 443."""
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [
            {
                "role": "control-plane",
                "image": versions.KIND_NODE_IMAGES[settings.kubernetes_version],
                "labels": {INGRESS_NODE_LABEL: "true"},
                "extraPortMappings": [
                    {"containerPort": 80, "hostPort": 80, "protocol": "TCP"},
                    {"containerPort": 443, "hostPort": 443, "protocol": "TCP"},
                ],
            }
        ],
    }


@dataclass(frozen=True)
class ClusterArgs:
    settings: Settings


class Cluster(pulumi.ComponentResource):
    """The target cluster: created with kind, or an existing one by kubeconfig."""

    provider: k8s.Provider
    # The command that creates the kind cluster; None for an existing cluster.
    kind_cluster: local.Command | None

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("covid-ingest:platform:Cluster", name, None, opts)
        settings = args.settings
        self.kind_cluster = None

        if settings.cluster_kind is ClusterKind.KIND:
            cluster_name = settings.kind_cluster_name
            config_yaml = yaml.safe_dump(kind_config(settings), sort_keys=False)
            self.kind_cluster = local.Command(
                f"{name}-kind",
                create=(
                    f"kind create cluster --name {cluster_name} --config - --wait 180s"
                    f" && kind get kubeconfig --name {cluster_name}"
                ),
                delete=f"kind delete cluster --name {cluster_name}",
                stdin=config_yaml,
                # A changed node image or port mapping needs a new cluster.
                triggers=[config_yaml],
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # stdout is the kubeconfig, which contains the admin client key.
                    additional_secret_outputs=["stdout"],
                ),
            )
            kubeconfig: pulumi.Input[str] | None = pulumi.Output.secret(
                self.kind_cluster.stdout
            )
            context = None
        else:
            kubeconfig = settings.kubeconfig
            context = settings.kube_context

        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=kubeconfig,
            context=context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"provider": self.provider.id})
