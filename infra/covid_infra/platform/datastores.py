"""MongoDB and Redis in the application namespace, reachable only by their clients.

MongoDB keeps every record; Redis carries the pub/sub path and the real-time
views. Both run as single-replica StatefulSets with a volume each. A stack that
sets covid:mongoUrl uses that MongoDB instead and declares none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from covid_common import names

from covid_infra import versions
from covid_infra.objects import (
    LINKERD_ADMIN_PORT,
    MESHED,
    Resources,
    container_security_context,
    empty_dir,
    labels,
    pod_security_context,
    secret_env,
    selector_labels,
)
from covid_infra.platform.namespaces import MONITORING_NAMESPACE

MONGO_NAME = "mongodb"
MONGO_PORT = 27017
MONGO_APP_USER = "covid"
REDIS_NAME = "redis"
REDIS_PORT = 6379
# uid and gid of the `mongodb` and `redis` users in the official images.
DATASTORE_UID = 999
# Secret the services read their connection URLs from, by secretKeyRef.
CONNECTIONS_SECRET = "covid-connections"
MONGO_URL_KEY = "mongo-url"
REDIS_URL_KEY = "redis-url"

_MONGO_INIT_SCRIPT = """\
// The image runs this once, when the data directory is empty: it creates the
// services' user, with read and write access to the records database only.
const database = process.env.MONGO_INITDB_DATABASE;
db.getSiblingDB(database).createUser({
  user: process.env.MONGO_APP_USERNAME,
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "readWrite", db: database }],
});
"""


@dataclass(frozen=True)
class DataStoresArgs:
    namespace: str
    storage_class: str | None
    # Used only when MongoDB runs in the cluster (external_mongo_url is None).
    mongo_root_password: pulumi.Output[str] | None
    mongo_app_password: pulumi.Output[str] | None
    redis_password: pulumi.Output[str]
    # Connection URL of a MongoDB outside the cluster; None runs MongoDB here.
    external_mongo_url: pulumi.Output[str] | None
    # Names of the services that may connect to each store.
    mongo_clients: tuple[str, ...]
    redis_clients: tuple[str, ...]
    # Resources every object here waits for: the namespace, and Linkerd's
    # control plane, whose webhook must be up to inject the proxies.
    depends_on: tuple[pulumi.Resource, ...] = ()
    volume_size: str = "5Gi"


class DataStores(pulumi.ComponentResource):
    """MongoDB, Redis, their NetworkPolicies and the services' connection Secret."""

    connections_secret: k8s.core.v1.Secret
    # The workloads the services wait for.
    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        args: DataStoresArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("covid-ingest:platform:DataStores", name, None, opts)
        self._args = args
        self.ready = []

        if args.external_mongo_url is None:
            self.ready.append(self._mongodb())
            mongo_url = pulumi.Output.concat(
                f"mongodb://{MONGO_APP_USER}:",
                args.mongo_app_password,
                f"@{MONGO_NAME}.{args.namespace}.svc.cluster.local:{MONGO_PORT}/",
                f"{names.MONGO_DB_DEFAULT}?authSource={names.MONGO_DB_DEFAULT}",
            )
        else:
            mongo_url = args.external_mongo_url
        self.ready.append(self._redis())
        redis_url = pulumi.Output.concat(
            "redis://:",
            args.redis_password,
            f"@{REDIS_NAME}.{args.namespace}.svc.cluster.local:{REDIS_PORT}/0",
        )

        self.connections_secret = k8s.core.v1.Secret(
            CONNECTIONS_SECRET,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=CONNECTIONS_SECRET, namespace=args.namespace
            ),
            type="Opaque",
            string_data={
                MONGO_URL_KEY: pulumi.Output.secret(mongo_url),
                REDIS_URL_KEY: pulumi.Output.secret(redis_url),
            },
            opts=self._child(),
        )
        self.register_outputs({"connections_secret": CONNECTIONS_SECRET})

    def _child(
        self, depends_on: list[pulumi.Resource] | None = None
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self, depends_on=[*self._args.depends_on, *(depends_on or [])]
        )

    def _metadata(self, name: str, component: str) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=self._args.namespace, labels=labels(name, component)
        )

    def _volume_claim(self) -> k8s.core.v1.PersistentVolumeClaimArgs:
        return k8s.core.v1.PersistentVolumeClaimArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(name="data"),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=self._args.storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                    requests={"storage": self._args.volume_size}
                ),
            ),
        )

    def _mongodb(self) -> pulumi.Resource:
        args = self._args
        secret_name = f"{MONGO_NAME}-credentials"
        secret = k8s.core.v1.Secret(
            secret_name,
            metadata=self._metadata(secret_name, "database"),
            type="Opaque",
            string_data={
                "root-username": "root",
                "root-password": args.mongo_root_password,
                "app-username": MONGO_APP_USER,
                "app-password": args.mongo_app_password,
            },
            opts=self._child(),
        )
        init_name = f"{MONGO_NAME}-init"
        init = k8s.core.v1.ConfigMap(
            init_name,
            metadata=self._metadata(init_name, "database"),
            data={"create-app-user.js": _MONGO_INIT_SCRIPT},
            opts=self._child(),
        )
        service = k8s.core.v1.Service(
            MONGO_NAME,
            metadata=self._metadata(MONGO_NAME, "database"),
            spec=k8s.core.v1.ServiceSpecArgs(
                # Headless: clients reach the one pod by its stable DNS name.
                cluster_ip="None",
                selector=selector_labels(MONGO_NAME),
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="mongodb", port=MONGO_PORT, target_port="mongodb"
                    )
                ],
            ),
            opts=self._child(),
        )

        volumes_and_mounts = [
            empty_dir("tmp", "/tmp"),
            empty_dir("configdb", "/data/configdb"),
        ]
        volumes = [volume for volume, _ in volumes_and_mounts]
        mounts = [mount for _, mount in volumes_and_mounts]
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name="init",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=init_name),
            )
        )
        mounts.append(
            k8s.core.v1.VolumeMountArgs(
                name="init", mount_path="/docker-entrypoint-initdb.d", read_only=True
            )
        )
        mounts.append(k8s.core.v1.VolumeMountArgs(name="data", mount_path="/data/db"))

        container = k8s.core.v1.ContainerArgs(
            name=MONGO_NAME,
            image=versions.MONGO_IMAGE,
            image_pull_policy="IfNotPresent",
            ports=[
                k8s.core.v1.ContainerPortArgs(name="mongodb", container_port=MONGO_PORT)
            ],
            env=[
                secret_env("MONGO_INITDB_ROOT_USERNAME", secret_name, "root-username"),
                secret_env("MONGO_INITDB_ROOT_PASSWORD", secret_name, "root-password"),
                k8s.core.v1.EnvVarArgs(
                    name="MONGO_INITDB_DATABASE", value=names.MONGO_DB_DEFAULT
                ),
                secret_env("MONGO_APP_USERNAME", secret_name, "app-username"),
                secret_env("MONGO_APP_PASSWORD", secret_name, "app-password"),
            ],
            resources=Resources("250m", "512Mi", "1", "1Gi").to_args(),
            security_context=container_security_context(DATASTORE_UID),
            volume_mounts=mounts,
            readiness_probe=k8s.core.v1.ProbeArgs(
                exec_=k8s.core.v1.ExecActionArgs(
                    command=[
                        "mongosh",
                        "--quiet",
                        "--eval",
                        "db.adminCommand('ping').ok",
                    ]
                ),
                period_seconds=10,
                timeout_seconds=5,
            ),
            liveness_probe=k8s.core.v1.ProbeArgs(
                tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="mongodb"),
                initial_delay_seconds=30,
                period_seconds=10,
            ),
        )
        statefulset = k8s.apps.v1.StatefulSet(
            MONGO_NAME,
            metadata=self._metadata(MONGO_NAME, "database"),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=MONGO_NAME,
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=selector_labels(MONGO_NAME)
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels(MONGO_NAME, "database"), annotations=MESHED
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        security_context=pod_security_context(DATASTORE_UID),
                        containers=[container],
                        volumes=volumes,
                    ),
                ),
                volume_claim_templates=[self._volume_claim()],
            ),
            opts=self._child(depends_on=[secret, init, service]),
        )
        self._network_policy(MONGO_NAME, MONGO_PORT, args.mongo_clients)
        return statefulset

    def _redis(self) -> pulumi.Resource:
        args = self._args
        secret_name = f"{REDIS_NAME}-credentials"
        secret = k8s.core.v1.Secret(
            secret_name,
            metadata=self._metadata(secret_name, "cache"),
            type="Opaque",
            string_data={"password": args.redis_password},
            opts=self._child(),
        )
        service = k8s.core.v1.Service(
            REDIS_NAME,
            metadata=self._metadata(REDIS_NAME, "cache"),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=selector_labels(REDIS_NAME),
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="redis", port=REDIS_PORT, target_port="redis"
                    )
                ],
            ),
            opts=self._child(),
        )
        tmp_volume, tmp_mount = empty_dir("tmp", "/tmp")
        container = k8s.core.v1.ContainerArgs(
            name=REDIS_NAME,
            image=versions.REDIS_IMAGE,
            image_pull_policy="IfNotPresent",
            command=["redis-server"],
            # The kubelet expands $(REDIS_PASSWORD) from the Secret-backed variable,
            # so the password never appears in the pod spec.
            args=[
                "--requirepass",
                "$(REDIS_PASSWORD)",
                "--appendonly",
                "yes",
                "--dir",
                "/data",
            ],
            ports=[
                k8s.core.v1.ContainerPortArgs(name="redis", container_port=REDIS_PORT)
            ],
            env=[
                secret_env("REDIS_PASSWORD", secret_name, "password"),
                # redis-cli (the readiness probe) reads the password from here.
                secret_env("REDISCLI_AUTH", secret_name, "password"),
            ],
            resources=Resources("100m", "128Mi", "1", "512Mi").to_args(),
            security_context=container_security_context(DATASTORE_UID),
            volume_mounts=[
                tmp_mount,
                k8s.core.v1.VolumeMountArgs(name="data", mount_path="/data"),
            ],
            readiness_probe=k8s.core.v1.ProbeArgs(
                exec_=k8s.core.v1.ExecActionArgs(command=["redis-cli", "ping"]),
                period_seconds=5,
                timeout_seconds=3,
            ),
            liveness_probe=k8s.core.v1.ProbeArgs(
                tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="redis"),
                initial_delay_seconds=10,
                period_seconds=10,
            ),
        )
        statefulset = k8s.apps.v1.StatefulSet(
            REDIS_NAME,
            metadata=self._metadata(REDIS_NAME, "cache"),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=REDIS_NAME,
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=selector_labels(REDIS_NAME)
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels(REDIS_NAME, "cache"), annotations=MESHED
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        security_context=pod_security_context(DATASTORE_UID),
                        containers=[container],
                        volumes=[tmp_volume],
                    ),
                ),
                volume_claim_templates=[self._volume_claim()],
            ),
            opts=self._child(depends_on=[secret, service]),
        )
        self._network_policy(REDIS_NAME, REDIS_PORT, args.redis_clients)
        return statefulset

    def _network_policy(self, store: str, port: int, clients: Sequence[str]) -> None:
        """Admit the store's clients on its port, and Prometheus on port 4191."""
        policy_name = f"{store}-clients"
        k8s.networking.v1.NetworkPolicy(
            policy_name,
            metadata=self._metadata(policy_name, "network-policy"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=selector_labels(store)
                ),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_expressions=[
                                        k8s.meta.v1.LabelSelectorRequirementArgs(
                                            key="app.kubernetes.io/name",
                                            operator="In",
                                            values=sorted(clients),
                                        )
                                    ]
                                )
                            )
                        ],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=port)],
                    ),
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=_namespace_selector(
                                    MONITORING_NAMESPACE
                                )
                            )
                        ],
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(
                                port=LINKERD_ADMIN_PORT
                            )
                        ],
                    ),
                ],
            ),
            opts=self._child(),
        )


def _namespace_selector(namespace: str) -> k8s.meta.v1.LabelSelectorArgs:
    return k8s.meta.v1.LabelSelectorArgs(
        match_labels={"kubernetes.io/metadata.name": namespace}
    )
