"""The public entry: one nginx Ingress, `/` to the router, `/live` to the page."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from covid_infra.objects import labels


@dataclass(frozen=True)
class Route:
    path: str
    service: str
    # Path the backend receives in place of `path`; None passes the path through.
    rewrite: str | None = None


def rewrites_annotation(routes: tuple[Route, ...]) -> dict[str, str]:
    """Build the F5 NGINX Ingress Controller's annotation for path rewrites.

    Its syntax is "serviceName=<service> rewrite=<path>", one entry per service,
    separated by semicolons.
    """
    entries = [
        f"serviceName={route.service} rewrite={route.rewrite}"
        for route in routes
        if route.rewrite is not None
    ]
    return {"nginx.org/rewrites": ";".join(entries)} if entries else {}


@dataclass(frozen=True)
class PublicIngressArgs:
    namespace: str
    host: str
    ingress_class: str
    routes: tuple[Route, ...]
    # The controller must serve the class before the Ingress can get an address.
    controller: pulumi.Resource
    # Anything else to wait for: the namespace and the backend Services.
    depends_on: tuple[pulumi.Resource, ...] = ()


class PublicIngress(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        args: PublicIngressArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("covid-ingest:apps:PublicIngress", name, None, opts)
        paths = [
            k8s.networking.v1.HTTPIngressPathArgs(
                path=route.path,
                path_type="Prefix",
                backend=k8s.networking.v1.IngressBackendArgs(
                    service=k8s.networking.v1.IngressServiceBackendArgs(
                        name=route.service,
                        port=k8s.networking.v1.ServiceBackendPortArgs(name="http"),
                    )
                ),
            )
            for route in args.routes
        ]
        self.ingress = k8s.networking.v1.Ingress(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name,
                namespace=args.namespace,
                labels=labels(name, "ingress"),
                annotations=rewrites_annotation(args.routes) or None,
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=args.ingress_class,
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=args.host,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(paths=paths),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.controller, *args.depends_on]
            ),
        )
        self.url = f"http://{args.host}"
        self.register_outputs({"url": self.url})
