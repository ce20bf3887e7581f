"""One way to declare a Helm release, so every release sets the same safety options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi_kubernetes.helm import v3 as helm

from covid_infra.versions import HelmChart

# Seconds Helm waits for each Kubernetes operation of a release. Image pulls on a
# fresh kind node dominate, so the default of 300 s is too tight for
# kube-prometheus-stack.
DEFAULT_TIMEOUT_S = 600


def release(
    name: str,
    chart: HelmChart,
    namespace: pulumi.Input[str],
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    timeout_s: int = DEFAULT_TIMEOUT_S,
) -> helm.Release:
    """Declare a Helm release of `chart` that rolls back on failure."""
    repository = (
        helm.RepositoryOptsArgs(repo=chart.repository) if chart.repository else None
    )
    return helm.Release(
        name,
        name=name,
        chart=chart.chart,
        version=chart.version,
        repository_opts=repository,
        namespace=namespace,
        values=dict(values),
        timeout=timeout_s,
        # A failed install or upgrade is rolled back and its new objects removed,
        # so a half-installed release never stays behind.
        atomic=True,
        cleanup_on_fail=True,
        opts=opts,
    )
