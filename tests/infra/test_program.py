"""Which resources each stack declares, under which components and provider."""

from __future__ import annotations

import re
from collections import Counter

from covid_common import names
from covid_infra.cluster import INGRESS_NODE_LABEL, kind_config
from covid_infra.mocked import Recording
from covid_infra.settings import load_settings

from tests.infra.support import (
    COMMAND,
    CONFIG_FILE,
    DEPLOYMENT,
    DOCKER_IMAGE,
    PROVIDER,
    RELEASE,
    STATEFULSET,
)

SERVICE_COUNT = len(names.ALL_SERVICES)
# Kubernetes objects both stacks declare, by kind.
KUBERNETES_OBJECTS = {
    "kubernetes:core/v1:Namespace": 4,
    "kubernetes:core/v1:ServiceAccount": SERVICE_COUNT,
    DEPLOYMENT: SERVICE_COUNT,
    # One per app service, plus MongoDB and Redis.
    "kubernetes:core/v1:Service": SERVICE_COUNT + 2,
    STATEFULSET: 2,
    # Grafana admin, MongoDB and Redis credentials, service connection URLs.
    "kubernetes:core/v1:Secret": 4,
    # The MongoDB init script and the three dashboards.
    "kubernetes:core/v1:ConfigMap": 4,
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": 2,
    "kubernetes:networking.k8s.io/v1:Ingress": 1,
    "kubernetes:monitoring.coreos.com/v1:ServiceMonitor": SERVICE_COUNT,
    "kubernetes:monitoring.coreos.com/v1:PodMonitor": 1,
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule": 1,
    RELEASE: 4,
    CONFIG_FILE: 1,
    PROVIDER: 1,
}
COMPONENTS = {
    "covid-ingest:platform:Cluster",
    "covid-ingest:platform:Images",
    "covid-ingest:platform:Namespaces",
    "covid-ingest:platform:GatewayApi",
    "covid-ingest:platform:LinkerdCertificates",
    "covid-ingest:platform:Linkerd",
    "covid-ingest:platform:Monitoring",
    "covid-ingest:platform:IngressController",
    "covid-ingest:platform:DataStores",
    "covid-ingest:apps:Router",
    "covid-ingest:apps:GrpcPath",
    "covid-ingest:apps:RedisPath",
    "covid-ingest:apps:LivePage",
    "covid-ingest:apps:PublicIngress",
    "covid-ingest:observability:Monitors",
}


def _counts(recording: Recording) -> Counter:
    return Counter(registration.type for registration in recording.registrations)


def test_kind_stack_resource_counts(kind_recording):
    counts = _counts(kind_recording)
    for type_token, expected in KUBERNETES_OBJECTS.items():
        assert counts[type_token] == expected, type_token
    assert counts[DOCKER_IMAGE] == SERVICE_COUNT
    # `kind create cluster`, then one `kind load docker-image` per image.
    assert counts[COMMAND] == 1 + SERVICE_COUNT
    assert counts["tls:index/privateKey:PrivateKey"] == 2


def test_existing_stack_resource_counts(existing_recording):
    counts = _counts(existing_recording)
    for type_token, expected in KUBERNETES_OBJECTS.items():
        assert counts[type_token] == expected, type_token
    assert counts[DOCKER_IMAGE] == SERVICE_COUNT
    assert counts[COMMAND] == 0


def test_external_mongo_declares_no_mongodb(external_mongo_recording):
    declared = {(r.type, r.name) for r in external_mongo_recording.registrations}
    assert (STATEFULSET, "mongodb") not in declared
    assert (
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "mongodb-clients",
    ) not in declared
    assert (STATEFULSET, "redis") in declared
    # No MongoDB passwords are generated for a MongoDB the stack does not run.
    password_names = {
        r.name
        for r in external_mongo_recording.of_type(
            "random:index/randomPassword:RandomPassword"
        )
    }
    assert password_names == {"redis-password", "grafana-admin-password"}


def test_every_component_is_declared(recording):
    declared = {
        r.type for r in recording.registrations if r.type.startswith("covid-ingest:")
    }
    assert declared == COMPONENTS


def test_resources_are_children_of_components(recording):
    index = recording.by_urn()
    top_level_allowed = {"random:index/randomPassword:RandomPassword"}
    for registration in recording.registrations:
        if registration.type.startswith("covid-ingest:"):
            continue
        if registration.type in top_level_allowed:
            continue
        parent = index.get(registration.parent)
        assert parent is not None, (
            f"{registration.type} {registration.name} has no parent"
        )
        assert parent.type in COMPONENTS or not parent.custom, registration.urn


def test_kubernetes_objects_use_stack_provider(recording):
    (provider,) = recording.of_type(PROVIDER)
    for registration in recording.registrations:
        if registration.type.startswith("kubernetes:"):
            assert registration.provider.startswith(provider.urn + "::"), (
                registration.urn
            )


def test_stack_outputs(recording):
    settings_host = "localhost" if recording.stack == "kind" else "covid.example.com"
    assert recording.outputs["ingress_url"] == f"http://{settings_host}"
    assert recording.outputs["grafana_url"] == f"http://grafana.{settings_host}"
    refs = recording.outputs["image_refs"]
    assert set(refs) == {service.name for service in names.ALL_SERVICES}
    for service in names.ALL_SERVICES:
        repository, _, tag = refs[service.name].rpartition(":")
        assert repository.endswith(service.image_name)
        assert re.fullmatch(r"[0-9a-f]{16}", tag), refs[service.name]


def test_existing_images_go_to_registry(existing_recording):
    for image in existing_recording.of_type(DOCKER_IMAGE):
        assert image.inputs["imageName"].startswith(
            "registry.example.com/covid-ingest/"
        )
        assert image.inputs["skipPush"] is False


def test_kind_images_stay_local(kind_recording):
    for image in kind_recording.of_type(DOCKER_IMAGE):
        assert image.inputs["skipPush"] is True
        assert "/" not in image.inputs["imageName"]
        # Built for the local engine's platform, which the kind node shares.
        assert "platform" not in image.inputs["build"]


def test_existing_images_use_configured_platform(existing_recording):
    for image in existing_recording.of_type(DOCKER_IMAGE):
        assert image.inputs["build"]["platform"] == "linux/amd64"


def test_image_build_paths_are_relative(recording):
    for image in recording.of_type(DOCKER_IMAGE):
        build = image.inputs["build"]
        assert not build["context"].startswith("/"), build
        assert build["dockerfile"].endswith("/Dockerfile")
        assert not build["dockerfile"].startswith("/"), build


def test_kind_cluster_command(kind_recording):
    create = kind_recording.named(COMMAND, "cluster-kind")
    assert create.inputs["create"].startswith("kind create cluster --name covid-ingest")
    assert create.inputs["delete"] == "kind delete cluster --name covid-ingest"
    assert "extraPortMappings" in create.inputs["stdin"]


def test_kind_config_maps_ingress_ports():
    import pulumi

    pulumi.runtime.set_all_config({"covid:clusterKind": "kind"})
    config = kind_config(load_settings())
    (node,) = config["nodes"]
    assert node["labels"] == {INGRESS_NODE_LABEL: "true"}
    assert {(m["containerPort"], m["hostPort"]) for m in node["extraPortMappings"]} == {
        (80, 80),
        (443, 443),
    }
    assert node["image"].startswith("kindest/node:v1.34.")
