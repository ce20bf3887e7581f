"""Configuration of the live service, read once at start-up from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from covid_common import names
from covid_common.config import LOG_LEVELS, EnvReader, StorageConfig

DEFAULT_SUMMARY_TTL_S = 2.0


@dataclass(frozen=True)
class LiveConfig:
    log_level: str
    http_port: int
    storage: StorageConfig
    summary_ttl_s: float = DEFAULT_SUMMARY_TTL_S


def load_live_config(environ: Mapping[str, str] | None = None) -> LiveConfig:
    """Read the live service's variables; raise ConfigError naming a bad one."""
    env = EnvReader(environ)
    return LiveConfig(
        log_level=env.choice(names.Env.LOG_LEVEL, "INFO", LOG_LEVELS),
        http_port=env.integer(names.Env.HTTP_PORT, names.LIVE.http_port, 1, 65535),
        storage=StorageConfig(
            mongo_url=env.url(names.Env.MONGO_URL, ("mongodb", "mongodb+srv")),
            mongo_db=env.mongo_database(names.Env.MONGO_DB, names.MONGO_DB_DEFAULT),
            redis_url=env.url(names.Env.REDIS_URL, ("redis", "rediss")),
        ),
        summary_ttl_s=env.number(
            names.Env.LIVE_SUMMARY_TTL_S, DEFAULT_SUMMARY_TTL_S, 0.0, 3600.0
        ),
    )
