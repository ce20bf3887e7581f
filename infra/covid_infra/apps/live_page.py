"""The live page: a web page of the real-time views, served under /live/."""

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
    service_url,
)

# The page is served under /live/ with the prefix removed, which works because it
# uses relative URLs only. NGINX redirects /live to /live/, its rule for proxied
# prefix locations that end in a slash.
LIVE_ROUTE = "/live/"


@dataclass(frozen=True)
class LivePageArgs:
    context: AppContext
    image: ImageRef
    # MongoDB and Redis connection URLs: the page reads both.
    storage_env: dict[str, SecretRef]


class LivePage(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: LivePageArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("covid-ingest:apps:LivePage", name, None, opts)
        self.workload = build_workload(
            self,
            WorkloadSpec(
                service=names.LIVE,
                image=args.image,
                component="web",
                env={names.Env.MONGO_DB: names.MONGO_DB_DEFAULT},
                secret_env=args.storage_env,
            ),
            args.context,
        )
        self.service_name = self.workload.service.metadata.name
        self.register_outputs(
            {
                "service_name": self.service_name,
                "url": service_url(names.LIVE, args.context.namespace),
            }
        )
