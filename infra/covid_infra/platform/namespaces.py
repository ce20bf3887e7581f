"""The namespaces the program installs into, with the labels each one needs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

LINKERD_NAMESPACE = "linkerd"
INGRESS_NAMESPACE = "nginx-ingress"
MONITORING_NAMESPACE = "monitoring"

# Labels Linkerd's own install gives its namespace: the proxy injector skips it,
# and its init containers may set iptables rules under Pod Security admission.
_LINKERD_LABELS = {
    "linkerd.io/is-control-plane": "true",
    "config.linkerd.io/admission-webhooks": "disabled",
    "linkerd.io/control-plane-ns": LINKERD_NAMESPACE,
    "pod-security.kubernetes.io/enforce": "privileged",
}
# kube-prometheus-stack runs Jobs (admission webhook certificate patches) that
# would never finish with a proxy beside them, so the proxy injector skips the
# whole namespace.
_MONITORING_LABELS = {"config.linkerd.io/admission-webhooks": "disabled"}
_MONITORING_ANNOTATIONS = {"linkerd.io/inject": "disabled"}


@dataclass(frozen=True)
class NamespacesArgs:
    app_namespace: str


class Namespaces(pulumi.ComponentResource):
    """The application, Linkerd, ingress controller and monitoring namespaces."""

    app: k8s.core.v1.Namespace
    linkerd: k8s.core.v1.Namespace
    ingress: k8s.core.v1.Namespace
    monitoring: k8s.core.v1.Namespace

    def __init__(
        self,
        name: str,
        args: NamespacesArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("covid-ingest:platform:Namespaces", name, None, opts)
        self.app = self._namespace(args.app_namespace, {}, {})
        self.linkerd = self._namespace(LINKERD_NAMESPACE, _LINKERD_LABELS, {})
        self.ingress = self._namespace(INGRESS_NAMESPACE, {}, {})
        self.monitoring = self._namespace(
            MONITORING_NAMESPACE, _MONITORING_LABELS, _MONITORING_ANNOTATIONS
        )
        self.register_outputs(
            {
                "app": self.app.metadata.name,
                "linkerd": self.linkerd.metadata.name,
                "ingress": self.ingress.metadata.name,
                "monitoring": self.monitoring.metadata.name,
            }
        )

    def _namespace(
        self, name: str, labels: dict[str, str], annotations: dict[str, str]
    ) -> k8s.core.v1.Namespace:
        return k8s.core.v1.Namespace(
            f"namespace-{name}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name,
                labels={"app.kubernetes.io/part-of": "covid-ingest", **labels},
                annotations=annotations or None,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
