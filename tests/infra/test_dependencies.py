"""The order a `pulumi up` creates things in, read from recorded dependencies."""

from __future__ import annotations

import pytest
from covid_common import names

from tests.infra.support import (
    COMMAND,
    CONFIG_FILE,
    DEPLOYMENT,
    DOCKER_IMAGE,
    INGRESS,
    NAMESPACE,
    POD_MONITOR,
    PROMETHEUS_RULE,
    PROVIDER,
    RELEASE,
    SERVICE_MONITOR,
    STATEFULSET,
    manifest,
    waits_for,
)


def _release(recording, name):
    return recording.named(RELEASE, name)


def test_gateway_api_crds_before_linkerd(recording):
    crds = recording.named(CONFIG_FILE, "gateway-api-crds")
    assert waits_for(recording, _release(recording, "linkerd-crds"), crds)
    assert waits_for(recording, _release(recording, "linkerd-control-plane"), crds)


def test_linkerd_crds_before_control_plane(recording):
    assert waits_for(
        recording,
        _release(recording, "linkerd-control-plane"),
        _release(recording, "linkerd-crds"),
    )


@pytest.mark.parametrize(
    "type_token, name",
    [
        ("tls:index/selfSignedCert:SelfSignedCert", "linkerd-identity-anchor"),
        ("tls:index/locallySignedCert:LocallySignedCert", "linkerd-identity-issuer"),
        ("tls:index/privateKey:PrivateKey", "linkerd-identity-issuer-key"),
    ],
)
def test_certificates_before_control_plane(recording, type_token, name):
    certificate = recording.named(type_token, name)
    assert waits_for(
        recording, _release(recording, "linkerd-control-plane"), certificate
    )


def test_issuer_signed_after_anchor(recording):
    issuer = recording.named(
        "tls:index/locallySignedCert:LocallySignedCert", "linkerd-identity-issuer"
    )
    anchor = recording.named(
        "tls:index/selfSignedCert:SelfSignedCert", "linkerd-identity-anchor"
    )
    assert waits_for(recording, issuer, anchor)


def test_mesh_before_meshed_workloads(recording):
    control_plane = _release(recording, "linkerd-control-plane")
    meshed = recording.of_type(DEPLOYMENT) + recording.of_type(STATEFULSET)
    meshed.append(_release(recording, "nginx-ingress"))
    for workload in meshed:
        assert waits_for(recording, workload, control_plane), workload.name


def test_monitoring_crds_before_monitors(recording):
    stack = _release(recording, "kube-prometheus-stack")
    monitors = (
        recording.of_type(SERVICE_MONITOR)
        + recording.of_type(POD_MONITOR)
        + recording.of_type(PROMETHEUS_RULE)
    )
    assert len(monitors) == len(names.ALL_SERVICES) + 2
    for monitor in monitors:
        assert waits_for(recording, monitor, stack), monitor.name
    # The controller's chart declares a ServiceMonitor too.
    assert waits_for(recording, _release(recording, "nginx-ingress"), stack)


def test_controller_before_ingress(recording):
    ingress = recording.named(INGRESS, "covid-ingest")
    assert waits_for(recording, ingress, _release(recording, "nginx-ingress"))
    for service_name in (names.ROUTER.name, names.LIVE.name):
        service = recording.named("kubernetes:core/v1:Service", service_name)
        assert waits_for(recording, ingress, service)


def test_images_before_deployments(recording):
    for service in names.ALL_SERVICES:
        deployment = recording.named(DEPLOYMENT, service.name)
        image = recording.named(DOCKER_IMAGE, f"image-{service.name}")
        assert waits_for(recording, deployment, image), service.name
        container = manifest(deployment)["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == recording.outputs["image_refs"][service.name]


def test_kind_loads_images_before_deployments(kind_recording):
    cluster = kind_recording.named(COMMAND, "cluster-kind")
    for service in names.ALL_SERVICES:
        load = kind_recording.named(COMMAND, f"kind-load-{service.name}")
        image = kind_recording.named(DOCKER_IMAGE, f"image-{service.name}")
        assert waits_for(kind_recording, load, image)
        assert waits_for(kind_recording, load, cluster)
        assert load.inputs["triggers"] == [image.inputs["imageName"].rpartition(":")[2]]
        deployment = kind_recording.named(DEPLOYMENT, service.name)
        assert waits_for(kind_recording, deployment, load), service.name


def test_kind_cluster_before_provider(kind_recording):
    (provider,) = kind_recording.of_type(PROVIDER)
    assert waits_for(
        kind_recording, provider, kind_recording.named(COMMAND, "cluster-kind")
    )


def test_data_stores_before_services(recording):
    for service in names.ALL_SERVICES:
        deployment = recording.named(DEPLOYMENT, service.name)
        for store in ("mongodb", "redis"):
            statefulset = recording.named(STATEFULSET, store)
            assert waits_for(recording, deployment, statefulset), (service.name, store)


def test_paths_before_router(recording):
    router = recording.named(DEPLOYMENT, names.ROUTER.name)
    for service in (
        names.GRPC_CLIENT,
        names.GRPC_SERVER,
        names.REDIS_PUB,
        names.REDIS_SUB,
    ):
        assert waits_for(recording, router, recording.named(DEPLOYMENT, service.name))


def test_namespace_before_namespaced_objects(recording):
    namespaces = {
        ns.inputs["metadata"]["name"]: ns for ns in recording.of_type(NAMESPACE)
    }
    checked = 0
    for registration in recording.kubernetes_objects():
        namespace = registration.inputs["metadata"].get("namespace")
        if namespace is None:
            continue
        assert waits_for(recording, registration, namespaces[namespace]), (
            registration.urn
        )
        checked += 1
    for release in recording.of_type(RELEASE):
        assert waits_for(recording, release, namespaces[release.inputs["namespace"]])
        checked += 1
    assert checked > 40
