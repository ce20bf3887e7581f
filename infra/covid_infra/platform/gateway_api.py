"""Gateway API CRDs (standard channel), which Linkerd needs before it installs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from covid_infra import versions


@dataclass(frozen=True)
class GatewayApiArgs:
    manifest_url: str = versions.GATEWAY_API_STANDARD_INSTALL_URL


class GatewayApi(pulumi.ComponentResource):
    """The CRDs of the Gateway API release pinned in versions.py."""

    crds: k8s.yaml.v2.ConfigFile

    def __init__(
        self,
        name: str,
        args: GatewayApiArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("covid-ingest:platform:GatewayApi", name, None, opts)
        self.crds = k8s.yaml.v2.ConfigFile(
            f"{name}-crds",
            file=args.manifest_url,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"manifest": args.manifest_url})
