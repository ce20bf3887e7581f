"""Every declared Kubernetes object is valid for the stack's Kubernetes version.

Built-in kinds validate strictly (unknown fields rejected) with kubernetes-validate.
The Prometheus Operator kinds have no schema there, so their apiVersion, kind and
the fields the operator requires are checked instead.
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.infra.conftest import kubernetes_version
from tests.infra.support import manifest

OPERATOR_KINDS = {
    # kind -> spec fields the Prometheus Operator needs to act on the object.
    "ServiceMonitor": ("selector", "endpoints"),
    "PodMonitor": ("selector", "podMetricsEndpoints"),
    "PrometheusRule": ("groups",),
}


def test_builtin_objects_validate_strictly(recording):
    version = kubernetes_version(recording.stack)
    validated = 0
    for registration in recording.kubernetes_objects():
        document = manifest(registration)
        if document["kind"] in OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{document['kind']} {document['metadata']['name']} is invalid for "
                f"Kubernetes {version}: {error.message} at {list(error.path)}"
            )
        validated += 1
    assert validated >= 30


def test_operator_objects_have_required_fields(recording):
    checked = 0
    for registration in recording.kubernetes_objects():
        document = manifest(registration)
        required = OPERATOR_KINDS.get(document["kind"])
        if required is None:
            continue
        assert document["apiVersion"] == "monitoring.coreos.com/v1"
        assert document["metadata"]["name"]
        assert document["metadata"]["namespace"]
        for field in required:
            assert document["spec"].get(field), (document["kind"], field)
        checked += 1
    assert checked >= 3


def test_prometheus_rule_groups_have_rules(recording):
    (rule,) = [
        r
        for r in recording.kubernetes_objects()
        if r.inputs["kind"] == "PrometheusRule"
    ]
    for group in manifest(rule)["spec"]["groups"]:
        assert group["name"]
        assert group["rules"], group["name"]
        for item in group["rules"]:
            assert "expr" in item
            assert ("alert" in item) != ("record" in item)
