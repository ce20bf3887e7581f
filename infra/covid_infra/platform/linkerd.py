"""Linkerd: its mTLS certificates, its CRDs and its control plane (edge channel)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_tls as tls

from covid_infra import versions
from covid_infra.platform import helm

# Linkerd signs workload certificates with the issuer, and proxies trust the anchor.
# The anchor only signs issuers, so it can live long; the issuer is rotated yearly.
TRUST_ANCHOR_VALIDITY_HOURS = 10 * 365 * 24  # 10 years
ISSUER_VALIDITY_HOURS = 365 * 24  # 1 year
# A `pulumi up` in the issuer's last 30 days issues a new one.
ISSUER_EARLY_RENEWAL_HOURS = 30 * 24
# Linkerd's identity service expects these names, under the cluster's trust
# domain (the cluster domain, cluster.local, by default).
TRUST_ANCHOR_COMMON_NAME = "root.linkerd.cluster.local"
ISSUER_COMMON_NAME = "identity.linkerd.cluster.local"
_CA_USES = ["cert_signing", "crl_signing"]


class LinkerdCertificates(pulumi.ComponentResource):
    """ECDSA P-256 trust anchor (self-signed CA) and identity issuer (signed by it)."""

    trust_anchor_pem: pulumi.Output[str]
    issuer_cert_pem: pulumi.Output[str]
    issuer_key_pem: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("covid-ingest:platform:LinkerdCertificates", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        anchor_key = tls.PrivateKey(
            f"{name}-anchor-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        anchor = tls.SelfSignedCert(
            f"{name}-anchor",
            private_key_pem=anchor_key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=TRUST_ANCHOR_VALIDITY_HOURS,
            allowed_uses=_CA_USES,
            set_subject_key_id=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=TRUST_ANCHOR_COMMON_NAME),
            opts=child,
        )

        issuer_key = tls.PrivateKey(
            f"{name}-issuer-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        issuer_request = tls.CertRequest(
            f"{name}-issuer-request",
            private_key_pem=issuer_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=ISSUER_COMMON_NAME),
            opts=child,
        )
        issuer = tls.LocallySignedCert(
            f"{name}-issuer",
            cert_request_pem=issuer_request.cert_request_pem,
            ca_cert_pem=anchor.cert_pem,
            ca_private_key_pem=anchor_key.private_key_pem,
            is_ca_certificate=True,
            # The issuer signs workload certificates only, never another CA.
            max_path_length=0,
            validity_period_hours=ISSUER_VALIDITY_HOURS,
            early_renewal_hours=ISSUER_EARLY_RENEWAL_HOURS,
            allowed_uses=_CA_USES,
            set_subject_key_id=True,
            opts=child,
        )

        self.trust_anchor_pem = anchor.cert_pem
        self.issuer_cert_pem = issuer.cert_pem
        self.issuer_key_pem = pulumi.Output.secret(issuer_key.private_key_pem)
        self.register_outputs(
            {
                "trust_anchor_pem": self.trust_anchor_pem,
                "issuer_cert_pem": self.issuer_cert_pem,
            }
        )


def linkerd_crds_values() -> dict[str, Any]:
    # The Gateway API CRDs are installed separately (GatewayApi), before Linkerd.
    return {"installGatewayAPI": False}


def linkerd_control_plane_values(
    trust_anchor_pem: pulumi.Input[str],
    issuer_cert_pem: pulumi.Input[str],
    issuer_key_pem: pulumi.Input[str],
) -> dict[str, Any]:
    return {
        "identityTrustAnchorsPEM": trust_anchor_pem,
        "identity": {
            "issuer": {"tls": {"crtPEM": issuer_cert_pem, "keyPEM": issuer_key_pem}}
        },
    }


@dataclass(frozen=True)
class LinkerdArgs:
    namespace: pulumi.Input[str]
    certificates: LinkerdCertificates
    # The Gateway API CRDs, which the control plane's policy controller watches.
    gateway_api: pulumi.Resource


class Linkerd(pulumi.ComponentResource):
    """linkerd-crds, then linkerd-control-plane."""

    crds: pulumi.Resource
    control_plane: pulumi.Resource

    def __init__(
        self, name: str, args: LinkerdArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("covid-ingest:platform:Linkerd", name, None, opts)
        certificates = args.certificates

        self.crds = helm.release(
            "linkerd-crds",
            versions.LINKERD_CRDS,
            args.namespace,
            linkerd_crds_values(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.gateway_api]),
        )
        self.control_plane = helm.release(
            "linkerd-control-plane",
            versions.LINKERD_CONTROL_PLANE,
            args.namespace,
            linkerd_control_plane_values(
                certificates.trust_anchor_pem,
                certificates.issuer_cert_pem,
                certificates.issuer_key_pem,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.crds, certificates, args.gateway_api]
            ),
        )
        self.register_outputs({"control_plane": self.control_plane.id})
