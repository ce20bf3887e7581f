"""The gRPC path: grpc-client (HTTP in, gRPC out) and grpc-server (stores records)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from covid_common import names

from covid_infra.apps.workload import (
    AppContext,
    ImageRef,
    SecretRef,
    WorkloadSpec,
    build_workload,
)


@dataclass(frozen=True)
class GrpcPathArgs:
    context: AppContext
    client_image: ImageRef
    server_image: ImageRef
    # MongoDB and Redis connection URLs, for the server's storage.
    storage_env: dict[str, SecretRef]


class GrpcPath(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: GrpcPathArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("covid-ingest:apps:GrpcPath", name, None, opts)
        namespace = args.context.namespace
        self.server = build_workload(
            self,
            WorkloadSpec(
                service=names.GRPC_SERVER,
                image=args.server_image,
                component="grpc-path",
                env={names.Env.MONGO_DB: names.MONGO_DB_DEFAULT},
                secret_env=args.storage_env,
            ),
            args.context,
        )
        server_address = (
            f"{names.GRPC_SERVER.name}.{namespace}.svc.cluster.local"
            f":{names.GRPC_SERVER.grpc_port}"
        )
        self.client = build_workload(
            self,
            WorkloadSpec(
                service=names.GRPC_CLIENT,
                image=args.client_image,
                component="grpc-path",
                env={names.Env.GRPC_SERVER_ADDR: server_address},
            ),
            args.context,
        )
        self.register_outputs(
            {
                "client_service": self.client.service.metadata.name,
                "server_service": self.server.service.metadata.name,
                "server_address": server_address,
            }
        )
