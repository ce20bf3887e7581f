"""Helm releases: pinned versions, safe options, and values the charts know.

Every key the program sets must exist in the pinned chart's own values.yaml
(under shared/charts), so a typo or a key renamed by an upgrade fails here rather
than being ignored by Helm. Maps whose keys are free-form (annotations,
nodeSelector, ...) are checked down to the map itself, not inside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import referencing.exceptions
import referencing.jsonschema
import yaml
from covid_infra import versions
from covid_infra.platform.ingress_controller import nginx_ingress_values
from covid_infra.platform.monitoring import kube_prometheus_stack_values

from tests.infra.support import RELEASE, unwrap

FREE_FORM_KEYS = {
    "annotations",
    "podAnnotations",
    "labels",
    "podLabels",
    "nodeSelector",
    "resources",
    "additionalScrapeConfigs",
}
# Keys these chart versions document only as a commented-out example; each must
# still appear as `# <key>:` in the chart's values.yaml.
COMMENTED_KEYS = {
    ("nginx-ingress", "controller.nodeSelector"),
    ("kube-prometheus-stack", "grafana.ingress.ingressClassName"),
}
CHARTS_BY_RELEASE = {
    "nginx-ingress": versions.NGINX_INGRESS,
    "linkerd-crds": versions.LINKERD_CRDS,
    "linkerd-control-plane": versions.LINKERD_CONTROL_PLANE,
    "kube-prometheus-stack": versions.KUBE_PROMETHEUS_STACK,
}
# Subcharts whose values live in their own values.yaml: key prefix -> chart.
SUBCHARTS = {"kube-prometheus-stack": {"grafana": versions.GRAFANA_SUBCHART}}


def _key_paths(values: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        path = (*prefix, key)
        yield path
        if isinstance(value, dict) and key not in FREE_FORM_KEYS:
            yield from _key_paths(value, path)


def _exists(defaults: Any, path: tuple[str, ...]) -> bool:
    node = defaults
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _chart_values(charts_dir: Path, chart: versions.HelmChart) -> tuple[dict, str]:
    path = charts_dir / chart.values_dir / "values.yaml"
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: shared/charts has no defaults for {chart.name}"
        )
    text = path.read_text()
    return yaml.safe_load(text), text


def _undefined_keys(charts_dir: Path, release_name: str, values: dict) -> list[str]:
    chart = CHARTS_BY_RELEASE[release_name]
    defaults, text = _chart_values(charts_dir, chart)
    undefined = []
    for path in _key_paths(values):
        dotted = ".".join(path)
        if _exists(defaults, path):
            continue
        subchart = SUBCHARTS.get(release_name, {}).get(path[0])
        if subchart is not None:
            sub_defaults, sub_text = _chart_values(charts_dir, subchart)
            if _exists(sub_defaults, path[1:]):
                continue
            text = text + sub_text
        if (release_name, dotted) in COMMENTED_KEYS and re.search(
            rf"#\s*{re.escape(path[-1])}:", text
        ):
            continue
        undefined.append(dotted)
    return undefined


def test_releases_pin_chart_and_options(recording):
    releases = recording.of_type(RELEASE)
    assert {release.name for release in releases} == set(CHARTS_BY_RELEASE)
    for release in releases:
        chart = CHARTS_BY_RELEASE[release.name]
        inputs = release.inputs
        assert inputs["version"] == chart.version
        assert inputs["chart"] == chart.chart
        if chart.repository is None:
            assert inputs["chart"].startswith("oci://")
            assert "repositoryOpts" not in inputs
        else:
            assert inputs["repositoryOpts"]["repo"] == chart.repository
        assert inputs["timeout"] >= 300
        assert inputs["atomic"] is True
        assert inputs["cleanupOnFail"] is True
        assert inputs["namespace"]


def test_pinned_versions_match_shared_charts(charts_dir):
    for chart in (*versions.HELM_CHARTS, versions.GRAFANA_SUBCHART):
        chart_file = charts_dir / chart.values_dir / "Chart.yaml"
        assert chart_file.is_file(), chart_file
        published = yaml.safe_load(chart_file.read_text())["version"]
        # Linkerd's edge charts carry a placeholder version in their source.
        if published != "0.0.0-undefined":
            assert published == chart.version, chart.name


def test_release_values_keys_exist_in_chart(recording, charts_dir):
    for release in recording.of_type(RELEASE):
        values = unwrap(release.inputs.get("values", {}))
        undefined = _undefined_keys(charts_dir, release.name, values)
        assert undefined == [], f"{release.name} sets keys its chart lacks: {undefined}"


def test_key_check_catches_unknown_key(charts_dir):
    values = {"controller": {"ingresClass": {"name": "nginx"}}}
    undefined = _undefined_keys(charts_dir, "nginx-ingress", values)
    assert undefined == ["controller.ingresClass", "controller.ingresClass.name"]


def _nginx_validator(charts_dir: Path) -> jsonschema.protocols.Validator:
    """Validator of the chart's values.schema.json that resolves its references offline.

    The schema refers by URL to a copy of the Kubernetes 1.36 object definitions.
    Those references resolve here to the same definitions that kubernetes-validate
    ships, so no network is needed.
    """
    schema_path = charts_dir / versions.NGINX_INGRESS.values_dir / "values.schema.json"
    schema = json.loads(schema_path.read_text())
    local = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    bundled = json.loads((local / "v1.36.0-local" / "_definitions.json").read_text())
    # The chart points into "#/definitions/..."; the bundled copy keeps them under
    # "$defs" and refers to them that way internally, so serve both names.
    definitions = {"definitions": bundled["$defs"], "$defs": bundled["$defs"]}

    def retrieve(uri: str) -> referencing.Resource:
        if not uri.endswith("/_definitions.json"):
            raise referencing.exceptions.NoSuchResource(ref=uri)
        return referencing.Resource.from_contents(
            definitions, default_specification=referencing.jsonschema.DRAFT202012
        )

    registry = referencing.Registry(retrieve=retrieve)
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema, registry=registry)


def test_nginx_values_match_chart_schema(recording, charts_dir):
    release = recording.named(RELEASE, "nginx-ingress")
    defaults, _ = _chart_values(charts_dir, versions.NGINX_INGRESS)
    # Helm validates the user's values merged over the chart defaults.
    merged = _merge(defaults, unwrap(release.inputs["values"]))
    errors = [
        error.message for error in _nginx_validator(charts_dir).iter_errors(merged)
    ]
    assert errors == []


def test_nginx_schema_rejects_bad_value(charts_dir):
    defaults, _ = _chart_values(charts_dir, versions.NGINX_INGRESS)
    merged = _merge(defaults, {"controller": {"hostPort": {"enable": "yes"}}})
    errors = list(_nginx_validator(charts_dir).iter_errors(merged))
    assert errors, "a string where the schema wants a boolean was accepted"


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_kind_ingress_controller_uses_host_ports(kind_recording):
    controller = kind_recording.named(RELEASE, "nginx-ingress").inputs["values"][
        "controller"
    ]
    assert controller["hostPort"] == {"enable": True, "http": 80, "https": 443}
    assert controller["nodeSelector"] == {"ingress-ready": "true"}
    assert controller["ingressClass"]["name"] == "nginx"
    assert controller["pod"]["annotations"] == {"linkerd.io/inject": "enabled"}


def test_existing_ingress_controller_uses_load_balancer(existing_recording):
    controller = existing_recording.named(RELEASE, "nginx-ingress").inputs["values"][
        "controller"
    ]
    assert "hostPort" not in controller
    assert controller["service"]["type"] == "LoadBalancer"


def test_prometheus_selects_all_monitors(recording):
    values = recording.named(RELEASE, "kube-prometheus-stack").inputs["values"]
    spec = values["prometheus"]["prometheusSpec"]
    for key in (
        "serviceMonitorSelectorNilUsesHelmValues",
        "podMonitorSelectorNilUsesHelmValues",
        "ruleSelectorNilUsesHelmValues",
        "probeSelectorNilUsesHelmValues",
    ):
        assert spec[key] is False, key
    grafana = values["grafana"]
    assert grafana["admin"]["existingSecret"] == "grafana-admin"
    assert "adminPassword" not in grafana
    assert grafana["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    assert grafana["sidecar"]["dashboards"]["labelValue"] == "1"


def test_monitoring_namespace_is_not_meshed(recording):
    namespace = recording.named("kubernetes:core/v1:Namespace", "namespace-monitoring")
    metadata = namespace.inputs["metadata"]
    assert metadata["annotations"]["linkerd.io/inject"] == "disabled"
    assert metadata["labels"]["config.linkerd.io/admission-webhooks"] == "disabled"


def test_linkerd_values_carry_certificates(recording):
    values = unwrap(recording.named(RELEASE, "linkerd-control-plane").inputs["values"])
    assert values["identityTrustAnchorsPEM"].startswith("-----BEGIN CERTIFICATE-----")
    tls = values["identity"]["issuer"]["tls"]
    assert tls["crtPEM"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in tls["keyPEM"]
    crds = recording.named(RELEASE, "linkerd-crds").inputs["values"]
    assert crds == {"installGatewayAPI": False}


def test_linkerd_certificate_lifetimes(recording):
    anchor = recording.named(
        "tls:index/selfSignedCert:SelfSignedCert", "linkerd-identity-anchor"
    )
    issuer = recording.named(
        "tls:index/locallySignedCert:LocallySignedCert", "linkerd-identity-issuer"
    )
    assert anchor.inputs["isCaCertificate"] is True
    assert anchor.inputs["validityPeriodHours"] == 87600
    assert issuer.inputs["isCaCertificate"] is True
    assert issuer.inputs["validityPeriodHours"] == 8760
    for key in recording.of_type("tls:index/privateKey:PrivateKey"):
        assert key.inputs["algorithm"] == "ECDSA"
        assert key.inputs["ecdsaCurve"] == "P256"


def test_values_builders_differ_by_cluster_kind():
    import pulumi
    from covid_infra.settings import load_settings

    pulumi.runtime.set_all_config({"covid:clusterKind": "kind"})
    kind = load_settings()
    pulumi.runtime.set_all_config(
        {"covid:clusterKind": "existing", "covid:registry": "registry.example.com/x"}
    )
    existing = load_settings()
    assert "kubeEtcd" in kube_prometheus_stack_values(kind)
    assert "kubeEtcd" not in kube_prometheus_stack_values(existing)
    assert nginx_ingress_values(kind)["controller"]["hostPort"]["enable"] is True
    assert "hostPort" not in nginx_ingress_values(existing)["controller"]
