"""Passwords and connection secrets of the stack, all Pulumi secrets.

A password set in stack config (`pulumi config set --secret covid:redisPassword ...`)
wins; otherwise a random one is generated once and kept in the stack's state.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

from covid_infra.settings import CONFIG_NAMESPACE

# Long enough for brute force to be hopeless, and letters and digits only, so the
# passwords can sit in connection URLs without percent-encoding.
PASSWORD_LENGTH = 32


@dataclass(frozen=True)
class Credentials:
    # None when covid:mongoUrl points at a MongoDB outside the cluster.
    mongo_root_password: pulumi.Output[str] | None
    mongo_app_password: pulumi.Output[str] | None
    redis_password: pulumi.Output[str]
    grafana_admin_password: pulumi.Output[str]
    # Connection URL of a MongoDB outside the cluster (covid:mongoUrl), if set.
    external_mongo_url: pulumi.Output[str] | None


def load_credentials(config: pulumi.Config | None = None) -> Credentials:
    config = config or pulumi.Config(CONFIG_NAMESPACE)
    external_mongo_url = config.get_secret("mongoUrl")
    in_cluster_mongo = external_mongo_url is None
    return Credentials(
        mongo_root_password=_password(config, "mongoRootPassword")
        if in_cluster_mongo
        else None,
        mongo_app_password=_password(config, "mongoAppPassword")
        if in_cluster_mongo
        else None,
        redis_password=_password(config, "redisPassword"),
        grafana_admin_password=_password(config, "grafanaAdminPassword"),
        external_mongo_url=external_mongo_url,
    )


def _password(config: pulumi.Config, key: str) -> pulumi.Output[str]:
    configured = config.get_secret(key)
    if configured is not None:
        return configured
    generated = random.RandomPassword(
        _kebab(key), length=PASSWORD_LENGTH, special=False, min_numeric=4
    )
    # RandomPassword already marks `result` secret; saying so again keeps the
    # guarantee visible where the value is used.
    return pulumi.Output.secret(generated.result)


def _kebab(key: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in key)
