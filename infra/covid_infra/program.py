"""The whole stack in dependency order; `__main__.py` calls `build` and exports."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pulumi
from covid_common import names

from covid_infra.apps.grpc_path import GrpcPath, GrpcPathArgs
from covid_infra.apps.ingress import PublicIngress, PublicIngressArgs, Route
from covid_infra.apps.live_page import LIVE_ROUTE, LivePage, LivePageArgs
from covid_infra.apps.redis_path import RedisPath, RedisPathArgs
from covid_infra.apps.router import Router, RouterArgs
from covid_infra.apps.workload import AppContext, ImageRef, SecretRef
from covid_infra.cluster import Cluster, ClusterArgs
from covid_infra.credentials import Credentials
from covid_infra.images import Images, ImagesArgs
from covid_infra.monitors import Monitors, MonitorsArgs
from covid_infra.platform.datastores import (
    CONNECTIONS_SECRET,
    MONGO_URL_KEY,
    REDIS_URL_KEY,
    DataStores,
    DataStoresArgs,
)
from covid_infra.platform.gateway_api import GatewayApi, GatewayApiArgs
from covid_infra.platform.ingress_controller import (
    INGRESS_CLASS,
    IngressController,
    IngressControllerArgs,
)
from covid_infra.platform.linkerd import Linkerd, LinkerdArgs, LinkerdCertificates
from covid_infra.platform.monitoring import Monitoring, MonitoringArgs
from covid_infra.platform.namespaces import (
    MONITORING_NAMESPACE,
    Namespaces,
    NamespacesArgs,
)
from covid_infra.settings import Settings

# Which services open connections to which data store; the NetworkPolicies admit
# exactly these. The storing processes write both stores, the publisher only
# publishes, and the live page reads both.
MONGO_CLIENTS = (names.GRPC_SERVER, names.REDIS_SUB, names.LIVE)
REDIS_CLIENTS = (names.GRPC_SERVER, names.REDIS_SUB, names.REDIS_PUB, names.LIVE)


@dataclass(frozen=True)
class StackOutputs:
    ingress_url: str
    grafana_url: str
    image_refs: dict[str, pulumi.Output[str]]


def build(
    settings: Settings, credentials: Credentials, repo_root: Path
) -> StackOutputs:
    cluster = Cluster("cluster", ClusterArgs(settings))
    # Every Kubernetes object below goes through this provider, never through
    # the ambient kubeconfig.
    k8s_opts = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})

    images = Images(
        "images",
        ImagesArgs(
            settings=settings,
            repo_root=repo_root,
            services=names.ALL_SERVICES,
            kind_cluster=cluster.kind_cluster,
            registry_password=pulumi.Config("covid").get_secret("registryPassword"),
        ),
    )

    namespaces = Namespaces(
        "namespaces", NamespacesArgs(settings.app_namespace), k8s_opts
    )
    gateway_api = GatewayApi("gateway-api", GatewayApiArgs(), k8s_opts)
    certificates = LinkerdCertificates("linkerd-identity")
    linkerd = Linkerd(
        "linkerd",
        LinkerdArgs(
            namespace=namespaces.linkerd.metadata.name,
            certificates=certificates,
            gateway_api=gateway_api,
        ),
        k8s_opts,
    )
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            settings=settings,
            namespace=namespaces.monitoring.metadata.name,
            grafana_admin_password=credentials.grafana_admin_password,
        ),
        k8s_opts,
    )
    ingress_controller = IngressController(
        "ingress-controller",
        IngressControllerArgs(
            settings=settings,
            namespace=namespaces.ingress.metadata.name,
            linkerd=linkerd.control_plane,
            monitoring=monitoring.release,
        ),
        k8s_opts,
    )

    datastores = DataStores(
        "datastores",
        DataStoresArgs(
            namespace=settings.app_namespace,
            storage_class=settings.storage_class,
            mongo_root_password=credentials.mongo_root_password,
            mongo_app_password=credentials.mongo_app_password,
            redis_password=credentials.redis_password,
            external_mongo_url=credentials.external_mongo_url,
            mongo_clients=tuple(service.name for service in MONGO_CLIENTS),
            redis_clients=tuple(service.name for service in REDIS_CLIENTS),
            depends_on=(namespaces.app, linkerd.control_plane),
        ),
        k8s_opts,
    )

    context = AppContext(
        namespace=settings.app_namespace,
        replicas=settings.replicas,
        log_level=settings.log_level,
        depends_on=(
            namespaces.app,
            linkerd.control_plane,
            datastores.connections_secret,
            *datastores.ready,
        ),
    )
    storage_env = {
        names.Env.MONGO_URL: SecretRef(CONNECTIONS_SECRET, MONGO_URL_KEY),
        names.Env.REDIS_URL: SecretRef(CONNECTIONS_SECRET, REDIS_URL_KEY),
    }

    def image(service: names.Service) -> ImageRef:
        return ImageRef(images.refs[service.name], tuple(images.ready[service.name]))

    grpc_path = GrpcPath(
        "grpc-path",
        GrpcPathArgs(
            context=context,
            client_image=image(names.GRPC_CLIENT),
            server_image=image(names.GRPC_SERVER),
            storage_env=storage_env,
        ),
        k8s_opts,
    )
    redis_path = RedisPath(
        "redis-path",
        RedisPathArgs(
            context=context,
            publisher_image=image(names.REDIS_PUB),
            subscriber_image=image(names.REDIS_SUB),
            storage_env=storage_env,
            redis_url=storage_env[names.Env.REDIS_URL],
        ),
        k8s_opts,
    )
    router = Router(
        "router",
        RouterArgs(
            # Both paths run before the router sends them records.
            context=replace(
                context, depends_on=(*context.depends_on, grpc_path, redis_path)
            ),
            image=image(names.ROUTER),
            route_weights=settings.route_weights,
        ),
        k8s_opts,
    )
    live_page = LivePage(
        "live-page",
        LivePageArgs(context=context, image=image(names.LIVE), storage_env=storage_env),
        k8s_opts,
    )

    PublicIngress(
        "covid-ingest",
        PublicIngressArgs(
            namespace=settings.app_namespace,
            host=settings.ingress_host,
            ingress_class=INGRESS_CLASS,
            routes=(
                Route("/", names.ROUTER.name),
                Route(LIVE_ROUTE, names.LIVE.name, rewrite="/"),
            ),
            controller=ingress_controller.release,
            # The backends' Services exist before the Ingress points at them.
            depends_on=(namespaces.app, router, live_page),
        ),
        k8s_opts,
    )
    Monitors(
        "monitors",
        MonitorsArgs(
            app_namespace=settings.app_namespace,
            monitoring_namespace=MONITORING_NAMESPACE,
            services=names.ALL_SERVICES,
            monitoring=monitoring.release,
            depends_on=(namespaces.app, namespaces.monitoring),
        ),
        k8s_opts,
    )

    return StackOutputs(
        ingress_url=settings.ingress_url,
        grafana_url=f"http://{settings.grafana_host}",
        image_refs=images.refs,
    )
