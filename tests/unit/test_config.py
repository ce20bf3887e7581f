"""Configuration from environment variables: errors name the variable."""

from __future__ import annotations

import importlib
import sys

import pytest
from covid_common import names
from covid_common.config import (
    ConfigError,
    describe,
    load_grpc_client_config,
    load_grpc_server_config,
    load_redis_pub_config,
    load_redis_sub_config,
    load_router_config,
    parse_route_weights,
)

ROUTER_ENV = {
    "GRPC_PATH_URL": "http://grpc-client:8081",
    "REDIS_PATH_URL": "http://redis-pub:8082",
}
STORAGE_ENV = {
    "MONGO_URL": "mongodb://user:secret@127.0.0.1:27117/?retryWrites=false",
    "REDIS_URL": "redis://127.0.0.1:6479/0",
}


def test_router_defaults():
    config = load_router_config(ROUTER_ENV)

    assert config.route_weights == {"grpc": 50, "redis": 50}
    assert config.http_port == 8080
    assert config.downstream_timeout_s == 5.0
    assert config.path_urls["grpc"] == "http://grpc-client:8081"


def test_zero_weight_path_needs_no_url():
    config = load_router_config({"ROUTE_WEIGHTS": "grpc=0,redis=100", **ROUTER_ENV})

    assert config.route_weights == {"grpc": 0, "redis": 100}
    assert set(config.path_urls) == {"redis"}


def test_omitted_path_gets_weight_zero():
    assert parse_route_weights("grpc=3") == {"grpc": 3, "redis": 0}


@pytest.mark.parametrize(
    "weights",
    [
        "grpc=fifty",
        "grpc=-1,redis=1",
        "grpc=0,redis=0",
        "ftp=1",
        "grpc",
        "grpc=1,grpc=2",
        "",
    ],
)
def test_bad_weights_name_the_variable(weights):
    with pytest.raises(ConfigError) as failure:
        load_router_config({"ROUTE_WEIGHTS": weights or ",", **ROUTER_ENV})

    assert failure.value.variable == "ROUTE_WEIGHTS"
    assert "ROUTE_WEIGHTS" in str(failure.value)


@pytest.mark.parametrize(
    ("loader", "env", "variable"),
    [
        (load_router_config, {"REDIS_PATH_URL": "http://x:1"}, "GRPC_PATH_URL"),
        (
            load_router_config,
            {**ROUTER_ENV, "GRPC_PATH_URL": "grpc-client:8081"},
            "GRPC_PATH_URL",
        ),
        (
            load_router_config,
            {**ROUTER_ENV, "DOWNSTREAM_TIMEOUT_S": "soon"},
            "DOWNSTREAM_TIMEOUT_S",
        ),
        (
            load_router_config,
            {**ROUTER_ENV, "DOWNSTREAM_TIMEOUT_S": "nan"},
            "DOWNSTREAM_TIMEOUT_S",
        ),
        (
            load_router_config,
            {**ROUTER_ENV, "DOWNSTREAM_TIMEOUT_S": "0"},
            "DOWNSTREAM_TIMEOUT_S",
        ),
        (load_router_config, {**ROUTER_ENV, "HTTP_PORT": "70000"}, "HTTP_PORT"),
        (load_router_config, {**ROUTER_ENV, "HTTP_PORT": "80.5"}, "HTTP_PORT"),
        (load_router_config, {**ROUTER_ENV, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        (load_grpc_client_config, {}, "GRPC_SERVER_ADDR"),
        (load_grpc_client_config, {"GRPC_SERVER_ADDR": "no-port"}, "GRPC_SERVER_ADDR"),
        (
            load_grpc_client_config,
            {"GRPC_SERVER_ADDR": "h:1", "GRPC_DEADLINE_S": "-1"},
            "GRPC_DEADLINE_S",
        ),
        (load_grpc_server_config, {"REDIS_URL": "redis://h:1"}, "MONGO_URL"),
        (load_grpc_server_config, {**STORAGE_ENV, "GRPC_PORT": "x"}, "GRPC_PORT"),
        (
            load_grpc_server_config,
            {**STORAGE_ENV, "MONGO_URL": "http://h:1"},
            "MONGO_URL",
        ),
        (load_redis_pub_config, {}, "REDIS_URL"),
        (
            load_redis_pub_config,
            {"REDIS_URL": "redis://h:1", "REDIS_MODE": "kafka"},
            "REDIS_MODE",
        ),
        (load_redis_sub_config, {"MONGO_URL": STORAGE_ENV["MONGO_URL"]}, "REDIS_URL"),
        (
            load_redis_sub_config,
            {**STORAGE_ENV, "REDIS_URL": "redis://h:99999"},
            "REDIS_URL",
        ),
        (load_grpc_server_config, {**STORAGE_ENV, "MONGO_DB": "a/b"}, "MONGO_DB"),
        (load_grpc_server_config, {**STORAGE_ENV, "MONGO_DB": "a.b"}, "MONGO_DB"),
        (load_redis_sub_config, {**STORAGE_ENV, "MONGO_DB": "a b"}, "MONGO_DB"),
        (load_redis_sub_config, {**STORAGE_ENV, "MONGO_DB": "x" * 64}, "MONGO_DB"),
        (
            load_grpc_server_config,
            {**STORAGE_ENV, "BIND_HOST": "localhost"},
            "BIND_HOST",
        ),
        (load_redis_sub_config, {**STORAGE_ENV, "BIND_HOST": "1.2.3"}, "BIND_HOST"),
    ],
)
def test_errors_name_the_variable(loader, env, variable):
    with pytest.raises(ConfigError) as failure:
        loader(env)

    assert failure.value.variable == variable
    assert variable in str(failure.value)


def test_blank_variable_counts_as_missing():
    with pytest.raises(ConfigError) as failure:
        load_redis_pub_config({"REDIS_URL": "   "})

    assert failure.value.variable == "REDIS_URL"


def test_redis_sub_reads_mode_and_storage():
    config = load_redis_sub_config({**STORAGE_ENV, "REDIS_MODE": "streams"})

    assert config.redis_mode == "streams"
    assert config.storage.mongo_db == "covid"
    assert config.http_port == 8083


def test_described_config_hides_passwords():
    config = load_grpc_server_config(STORAGE_ENV)

    text = describe(config)

    assert "secret" not in text
    assert "user:***@127.0.0.1:27117" in text
    assert "grpc_port=50051" in text


def test_bind_host_defaults_to_every_interface():
    assert load_grpc_server_config(STORAGE_ENV).bind_host == "0.0.0.0"
    assert load_redis_sub_config(STORAGE_ENV).bind_host == "0.0.0.0"


def test_bind_host_is_read():
    env = {**STORAGE_ENV, "BIND_HOST": "127.0.0.1"}

    assert load_grpc_server_config(env).bind_host == "127.0.0.1"
    assert load_redis_sub_config(env).bind_host == "127.0.0.1"


def test_longest_mongo_database_is_accepted():
    config = load_grpc_server_config({**STORAGE_ENV, "MONGO_DB": "x" * 63})

    assert config.storage.mongo_db == "x" * 63


def _import_gunicorn_conf(monkeypatch, environ: dict[str, str]):
    # gunicorn_conf reads its variables when it is imported.
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "covid_common.gunicorn_conf", raising=False)
    return importlib.import_module("covid_common.gunicorn_conf")


@pytest.mark.parametrize(
    ("host", "bind"),
    [("127.0.0.1", "127.0.0.1:8123"), ("::1", "[::1]:8123"), ("", "0.0.0.0:8123")],
)
def test_gunicorn_binds_bind_host(monkeypatch, host, bind):
    environ = {names.Env.HTTP_PORT: "8123", names.Env.BIND_HOST: host}

    gunicorn_conf = _import_gunicorn_conf(monkeypatch, environ)

    assert gunicorn_conf.bind == bind


def test_gunicorn_rejects_bad_bind_host(monkeypatch):
    environ = {names.Env.HTTP_PORT: "8123", names.Env.BIND_HOST: "every"}

    with pytest.raises(ConfigError) as failure:
        _import_gunicorn_conf(monkeypatch, environ)

    assert failure.value.variable == "BIND_HOST"
