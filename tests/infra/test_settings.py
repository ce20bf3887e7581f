"""Stack settings: defaults, and a clear error naming the key for each bad value."""

from __future__ import annotations

import pulumi
import pytest
from covid_infra.settings import ClusterKind, SettingsError, load_settings


def _settings(**config: str):
    pulumi.runtime.set_all_config(
        {f"covid:{key}": value for key, value in config.items()}
    )
    return load_settings()


def test_kind_defaults():
    settings = _settings(clusterKind="kind")
    assert settings.cluster_kind is ClusterKind.KIND
    assert settings.kubernetes_version == "1.34"
    assert settings.ingress_host == "localhost"
    assert settings.route_weights == {"grpc": 50, "redis": 50}
    assert settings.app_namespace == "covid"
    assert settings.replicas == 1
    assert settings.registry is None
    assert settings.external_mongo is False


def test_route_weights_from_map():
    settings = _settings(clusterKind="kind", routeWeights='{"grpc": 80, "redis": 20}')
    assert settings.route_weights == {"grpc": 80, "redis": 20}


def test_existing_takes_registry_and_context():
    settings = _settings(
        clusterKind="existing",
        registry="registry.example.com/team/",
        kubeContext="prod",
    )
    assert settings.registry == "registry.example.com/team"
    assert settings.kube_context == "prod"


@pytest.mark.parametrize(
    "config, key",
    [
        ({"clusterKind": "minikube"}, "clusterKind"),
        ({"clusterKind": "existing"}, "registry"),
        ({"clusterKind": "kind", "kubernetesVersion": "1.29"}, "kubernetesVersion"),
        ({"clusterKind": "kind", "kubernetesVersion": "v1.34.0"}, "kubernetesVersion"),
        ({"clusterKind": "kind", "ingressHost": "Not A Host"}, "ingressHost"),
        (
            {"clusterKind": "kind", "routeWeights": '{"grpc": 0, "redis": 0}'},
            "routeWeights",
        ),
        ({"clusterKind": "kind", "routeWeights": '{"kafka": 10}'}, "routeWeights"),
        ({"clusterKind": "kind", "routeWeights": '{"grpc": -1}'}, "routeWeights"),
        ({"clusterKind": "kind", "routeWeights": '"grpc=50"'}, "routeWeights"),
        ({"clusterKind": "kind", "replicas": "0"}, "replicas"),
        ({"clusterKind": "kind", "logLevel": "LOUD"}, "logLevel"),
        ({"clusterKind": "kind", "namespace": "Covid_NS"}, "namespace"),
    ],
)
def test_invalid_setting_names_key(config, key):
    with pytest.raises(SettingsError) as raised:
        _settings(**config)
    assert raised.value.key == key
    assert f"covid:{key}" in str(raised.value)
