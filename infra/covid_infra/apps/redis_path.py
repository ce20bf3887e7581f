"""The Redis path: redis-pub (HTTP in, PUBLISH out) and redis-sub (stores records)."""

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

REDIS_MODE = "pubsub"


@dataclass(frozen=True)
class RedisPathArgs:
    context: AppContext
    publisher_image: ImageRef
    subscriber_image: ImageRef
    # MongoDB and Redis connection URLs, for the subscriber's storage.
    storage_env: dict[str, SecretRef]
    redis_url: SecretRef


class RedisPath(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: RedisPathArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("covid-ingest:apps:RedisPath", name, None, opts)
        # Subscriber first: a message published with no subscriber is lost.
        self.subscriber = build_workload(
            self,
            WorkloadSpec(
                service=names.REDIS_SUB,
                image=args.subscriber_image,
                component="redis-path",
                env={
                    names.Env.MONGO_DB: names.MONGO_DB_DEFAULT,
                    names.Env.REDIS_MODE: REDIS_MODE,
                },
                secret_env=args.storage_env,
            ),
            args.context,
        )
        self.publisher = build_workload(
            self,
            WorkloadSpec(
                service=names.REDIS_PUB,
                image=args.publisher_image,
                component="redis-path",
                env={names.Env.REDIS_MODE: REDIS_MODE},
                secret_env={names.Env.REDIS_URL: args.redis_url},
            ),
            args.context,
        )
        self.register_outputs(
            {
                "publisher_service": self.publisher.service.metadata.name,
                "subscriber_service": self.subscriber.service.metadata.name,
            }
        )
