"""Containers, Services, NetworkPolicies, the Ingress and the monitors of each stack."""

from __future__ import annotations

import json

import pytest
from covid_common import names
from covid_infra import versions
from covid_infra.program import MONGO_CLIENTS, REDIS_CLIENTS

from observability.dashboards import all_dashboards
from observability.rules import rule_groups
from tests.infra.support import (
    CONFIG_MAP,
    DEPLOYMENT,
    INGRESS,
    NETWORK_POLICY,
    PROMETHEUS_RULE,
    RELEASE,
    SERVICE,
    SERVICE_MONITOR,
    containers,
    env_of,
    manifest,
    pod_spec,
    workloads,
)

ENV_NAMES = {value for key, value in vars(names.Env).items() if key.isupper()}
SECRET_ENV = {names.Env.MONGO_URL, names.Env.REDIS_URL}


def _image_tag(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    return name.partition(":")[2] if "@" not in name else name.partition("@")[2]


def test_no_image_uses_latest(recording):
    images = [c["image"] for w in workloads(recording) for c in containers(w)]
    images += list(recording.outputs["image_refs"].values())
    images += [
        versions.MONGO_IMAGE,
        versions.REDIS_IMAGE,
        *versions.KIND_NODE_IMAGES.values(),
    ]
    assert len(images) >= 10
    for image in images:
        tag = _image_tag(image)
        assert tag, f"{image} has no tag"
        assert tag != "latest", image


def test_containers_have_probes_and_resources(recording):
    checked = 0
    for workload in workloads(recording):
        for container in containers(workload):
            where = f"{workload.name}/{container['name']}"
            assert container.get("livenessProbe"), where
            assert container.get("readinessProbe"), where
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, where
            checked += 1
    assert checked == len(names.ALL_SERVICES) + 2


def test_containers_run_locked_down(recording):
    for workload in workloads(recording):
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, workload.name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for container in containers(workload):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, workload.name
            assert context["runAsUser"] > 0, workload.name
            assert context["readOnlyRootFilesystem"] is True, workload.name
            assert context["allowPrivilegeEscalation"] is False, workload.name
            assert context["capabilities"]["drop"] == ["ALL"], workload.name


def test_workloads_are_meshed(recording):
    for workload in workloads(recording):
        annotations = manifest(workload)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["linkerd.io/inject"] == "enabled", workload.name


@pytest.mark.parametrize("service", names.ALL_SERVICES, ids=lambda s: s.name)
def test_app_deployment_follows_names(recording, service):
    deployment = recording.named(DEPLOYMENT, service.name)
    (container,) = containers(deployment)
    assert container["command"] == list(service.command)
    assert container["securityContext"]["runAsUser"] == 10001

    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    expected_ports = {"http": service.http_port}
    if service.grpc_port is not None:
        expected_ports["grpc"] = service.grpc_port
    assert ports == expected_ports

    assert container["livenessProbe"]["httpGet"] == {
        "path": names.HEALTH_ROUTE,
        "port": "http",
    }
    readiness = container["readinessProbe"]
    if service.grpc_port is not None:
        assert readiness["grpc"] == {"port": service.grpc_port}
    else:
        assert readiness["httpGet"] == {"path": names.READY_ROUTE, "port": "http"}

    env = env_of(container)
    assert set(env) <= ENV_NAMES, set(env) - ENV_NAMES
    assert env[names.Env.HTTP_PORT]["value"] == str(service.http_port)
    for name in SECRET_ENV & set(env):
        assert "value" not in env[name], name
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "covid-connections"


def test_live_runs_one_gunicorn_worker(recording):
    deployment = recording.named(DEPLOYMENT, names.LIVE.name)
    (container,) = containers(deployment)

    env = env_of(container)
    assert env[names.Env.GUNICORN_WORKERS]["value"] == "1"


@pytest.mark.parametrize("service", names.ALL_SERVICES, ids=lambda s: s.name)
def test_thread_count_left_to_image(recording, service):
    deployment = recording.named(DEPLOYMENT, service.name)
    (container,) = containers(deployment)

    # gunicorn_conf gives each service its own default, the router 32 threads.
    assert names.Env.GUNICORN_THREADS not in env_of(container)


@pytest.mark.parametrize("service", names.ALL_SERVICES, ids=lambda s: s.name)
def test_writable_paths_are_empty_dirs(recording, service):
    deployment = recording.named(DEPLOYMENT, service.name)
    (container,) = containers(deployment)
    volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    multiproc = env_of(container).get(names.Env.PROMETHEUS_MULTIPROC_DIR)
    if service.command[0] == "gunicorn":
        assert multiproc is not None, service.name
        assert "emptyDir" in volumes[mounts[multiproc["value"]]]


@pytest.mark.parametrize("service", names.ALL_SERVICES, ids=lambda s: s.name)
def test_service_selects_its_pods(recording, service):
    spec = manifest(recording.named(SERVICE, service.name))["spec"]
    pod_labels = manifest(recording.named(DEPLOYMENT, service.name))["spec"][
        "template"
    ]["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items()
    assert {port["name"] for port in spec["ports"]} == (
        {"http", "grpc"} if service.grpc_port else {"http"}
    )


def test_router_environment(recording):
    (container,) = containers(recording.named(DEPLOYMENT, names.ROUTER.name))
    env = {name: item.get("value") for name, item in env_of(container).items()}
    assert env[names.Env.ROUTE_WEIGHTS] == "grpc=50,redis=50"
    assert env[names.Env.GRPC_PATH_URL] == (
        f"http://grpc-client.covid.svc.cluster.local:{names.GRPC_CLIENT.http_port}"
    )
    assert env[names.Env.REDIS_PATH_URL] == (
        f"http://redis-pub.covid.svc.cluster.local:{names.REDIS_PUB.http_port}"
    )
    (client,) = containers(recording.named(DEPLOYMENT, names.GRPC_CLIENT.name))
    address = env_of(client)[names.Env.GRPC_SERVER_ADDR]["value"]
    assert address.endswith(f":{names.GRPC_SERVER.grpc_port}")


def _policy_clients(recording, store: str) -> set[str]:
    spec = manifest(recording.named(NETWORK_POLICY, f"{store}-clients"))["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    clients = set()
    for rule in spec["ingress"]:
        for peer in rule["from"]:
            for expression in peer.get("podSelector", {}).get("matchExpressions", []):
                clients.update(expression["values"])
    return clients


@pytest.mark.parametrize(
    "store, variable, expected",
    [
        ("mongodb", names.Env.MONGO_URL, MONGO_CLIENTS),
        ("redis", names.Env.REDIS_URL, REDIS_CLIENTS),
    ],
)
def test_network_policy_admits_exact_clients(recording, store, variable, expected):
    admitted = _policy_clients(recording, store)
    assert admitted == {service.name for service in expected}
    # The services given the store's URL are exactly the ones the policy admits.
    users = {
        deployment.name
        for deployment in recording.of_type(DEPLOYMENT)
        if variable in env_of(next(containers(deployment)))
    }
    assert users == admitted


def test_ingress_routes(recording):
    spec = manifest(recording.named(INGRESS, "covid-ingest"))["spec"]
    assert spec["ingressClassName"] == "nginx"
    (rule,) = spec["rules"]
    host = "localhost" if recording.stack == "kind" else "covid.example.com"
    assert rule["host"] == host
    routes = {
        path["path"]: path["backend"]["service"]["name"]
        for path in rule["http"]["paths"]
    }
    assert routes == {"/": names.ROUTER.name, "/live/": names.LIVE.name}
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"]["port"] == {"name": "http"}
    # The live page is served from its own root, so only its prefix is removed.
    annotations = manifest(recording.named(INGRESS, "covid-ingest"))["metadata"][
        "annotations"
    ]
    assert annotations == {"nginx.org/rewrites": "serviceName=live rewrite=/"}


def test_service_monitor_per_service(recording):
    monitors = {
        m.inputs["metadata"]["name"]: manifest(m)
        for m in recording.of_type(SERVICE_MONITOR)
    }
    assert set(monitors) == {service.name for service in names.ALL_SERVICES}
    for service in names.ALL_SERVICES:
        spec = monitors[service.name]["spec"]
        assert spec["endpoints"] == [
            {"port": "http", "path": names.METRICS_ROUTE, "interval": "15s"}
        ]
        service_labels = manifest(recording.named(SERVICE, service.name))["metadata"][
            "labels"
        ]
        assert spec["selector"]["matchLabels"].items() <= service_labels.items()


def test_linkerd_proxies_are_scraped(recording):
    (monitor,) = [
        manifest(r)
        for r in recording.kubernetes_objects()
        if r.inputs["kind"] == "PodMonitor"
    ]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "linkerd-admin"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}


def test_dashboards_and_rules_come_from_observability(recording):
    dashboards = all_dashboards()
    loaded = {}
    for config_map in recording.of_type(CONFIG_MAP):
        metadata = config_map.inputs["metadata"]
        if metadata.get("labels", {}).get("grafana_dashboard") == "1":
            assert metadata["namespace"] == "monitoring"
            loaded.update(config_map.inputs["data"])
    assert set(loaded) == set(dashboards)
    for file_name, text in loaded.items():
        assert json.loads(text) == dashboards[file_name]
    (rule,) = recording.of_type(PROMETHEUS_RULE)
    assert manifest(rule)["spec"] == rule_groups()


def test_grafana_url_matches_its_ingress(recording):
    values = recording.named(RELEASE, "kube-prometheus-stack").inputs["values"]
    (host,) = values["grafana"]["ingress"]["hosts"]
    assert recording.outputs["grafana_url"] == f"http://{host}"
