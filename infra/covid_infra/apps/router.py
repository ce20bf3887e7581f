"""The router: validates records and forwards each to the gRPC or the Redis path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from covid_common import names

from covid_infra.apps.workload import (
    AppContext,
    ImageRef,
    WorkloadSpec,
    build_workload,
    service_url,
)


@dataclass(frozen=True)
class RouterArgs:
    context: AppContext
    image: ImageRef
    # Path name -> weight, e.g. {"grpc": 50, "redis": 50}.
    route_weights: Mapping[str, int]


class Router(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: RouterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("covid-ingest:apps:Router", name, None, opts)
        namespace = args.context.namespace
        weights = ",".join(
            f"{path}={weight}" for path, weight in args.route_weights.items()
        )
        self.workload = build_workload(
            self,
            WorkloadSpec(
                service=names.ROUTER,
                image=args.image,
                component="api",
                env={
                    names.Env.ROUTE_WEIGHTS: weights,
                    names.Env.GRPC_PATH_URL: service_url(names.GRPC_CLIENT, namespace),
                    names.Env.REDIS_PATH_URL: service_url(names.REDIS_PUB, namespace),
                },
            ),
            args.context,
        )
        self.service_name = self.workload.service.metadata.name
        self.register_outputs(
            {
                "service_name": self.service_name,
                "url": service_url(names.ROUTER, namespace),
            }
        )
