"""Parts of the runner and the load generator that need no running stack.

Generated configurations are checked by the programs that read them (promtool,
nginx -t); the record generator is checked against the router's own rules.
"""

from __future__ import annotations

import importlib
import json
import random
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from covid_common import names
from covid_common.record import INFECTED_TYPES, STATES, validate_case

from load import check_stats, records
from local import config as local_config
from local import nginx, prometheus
from local.config import REPO_ROOT, ConfigError, parse_ports, with_free_ports
from local.programs import build_programs, service_environment, write_files
from local.stack import LocalStack
from local.summary import Responses, StoreState, build_summary, read_responses
from observability import rules
from tests.e2e.conftest import runner_environment


@pytest.fixture
def config(tmp_path):
    return with_free_ports(tmp_path / "state")


# Generated configurations


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_prometheus_config_passes_promtool(config, tmp_path):
    write_files(config)
    path = config.state_dir / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_scrapes_every_service(config):
    targets = {s.name: f"127.0.0.1:{config.ports[s.name]}" for s in config.services}
    scrape = prometheus.scrape_config(targets, "127.0.0.1:9490")
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    for service in config.services:
        job = jobs[service.name]
        assert job["metrics_path"] == names.METRICS_ROUTE
        assert job["static_configs"][0]["targets"] == [targets[service.name]]
        # A "service" target label would clash with the services' own label.
        assert "service" not in job["static_configs"][0].get("labels", {})


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
def test_nginx_config_passes_nginx_test(config):
    write_files(config)
    nginx_dir = config.state_dir / "nginx"
    (nginx_dir / "tmp").mkdir(exist_ok=True)
    result = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(nginx_dir),
            "-c",
            str(nginx_dir / "nginx.conf"),
            "-e",
            str(config.state_dir / "logs" / "nginx-error.log"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_nginx_listens_on_loopback_and_proxies_to_router(tmp_path):
    text = nginx.render(listen_port=18000, router_port=18080, state_dir=tmp_path)
    assert "listen 127.0.0.1:18000;" in text
    assert "server 127.0.0.1:18080" in text
    assert "keepalive 32;" in text
    assert f"client_max_body_size {nginx.MAX_BODY_KIB}k;" in text
    assert "/etc/nginx" not in text


def test_nginx_errors_are_json(tmp_path):
    text = nginx.render(listen_port=1, router_port=2, state_dir=tmp_path)
    bodies = [line.split("'")[1] for line in text.splitlines() if "return 5" in line]
    bodies += [line.split("'")[1] for line in text.splitlines() if "return 413" in line]
    # 502, 503, 504, and a 413 for single records and one for batches.
    assert len(bodies) == 5
    for body in bodies:
        error = json.loads(body.replace("\\n", ""))
        assert error["error"] and error["message"], body


def test_services_get_store_urls_and_their_port(config):
    for service in config.services:
        env = service_environment(config, service)
        assert env[names.Env.HTTP_PORT] == str(config.ports[service.name])
        assert "retryWrites=false" in env[names.Env.MONGO_URL]
        assert env[names.Env.REDIS_URL] == config.redis_url
        assert env[names.Env.ROUTE_WEIGHTS] == local_config.DEFAULT_ROUTE_WEIGHTS
        # Only nginx faces the network.
        assert env[names.Env.BIND_HOST] == "127.0.0.1"
        multiproc = env.get(names.Env.PROMETHEUS_MULTIPROC_DIR)
        if service.command[0] == "gunicorn":
            assert multiproc and service.name in multiproc
        else:
            assert multiproc is None


def test_live_runs_one_gunicorn_worker(tmp_path):
    config = local_config.from_environment(
        environ={names.Env.GUNICORN_WORKERS: "4"}, state_dir=tmp_path
    )

    env = service_environment(config, names.LIVE)

    assert env[names.Env.GUNICORN_WORKERS] == "1"
    router_env = service_environment(config, names.ROUTER)
    assert router_env[names.Env.GUNICORN_WORKERS] == "4"


def test_prometheus_config_lists_alert_rules(config):
    write_files(config)

    scrape = (config.state_dir / "prometheus" / "prometheus.yml").read_text()
    rule_files = json.loads(scrape.partition("\n")[2])["rule_files"]
    assert len(rule_files) == 1
    assert Path(rule_files[0]).read_text() == rules.rules_yaml()


def test_external_stores_are_not_started(tmp_path):
    config = local_config.from_environment(
        environ={"MONGO_URL": "mongodb://db.example:27017", "REDIS_URL": "redis://r:1"},
        state_dir=tmp_path,
    )
    program_names = {program.name for program in build_programs(config)}
    assert "secantus" not in program_names
    assert "redis" not in program_names
    assert local_config.MONGO not in config.used_ports()


# Settings


def test_port_overrides_parse():
    assert parse_ports("ingress=8001, redis=6500", "test") == {
        "ingress": 8001,
        "redis": 6500,
    }


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("nginx=8001", "NAME one of"),
        ("ingress", "expected NAME=PORT"),
        ("ingress=http", "expected 1-65535"),
        ("ingress=70000", "expected 1-65535"),
    ],
)
def test_bad_port_override_is_named(text, fragment):
    with pytest.raises(ConfigError, match=fragment) as raised:
        parse_ports(text, "LOCAL_PORTS")
    assert "LOCAL_PORTS" in str(raised.value)


def test_bad_log_level_is_named(tmp_path):
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        local_config.from_environment(environ={"LOG_LEVEL": "loud"}, state_dir=tmp_path)


@pytest.mark.parametrize(
    "environ, fragment",
    [
        ({"MONGO_DB": "a/b"}, "cannot contain '/'"),
        ({"MONGO_DB": "a.b"}, "cannot contain '.'"),
        ({"MONGO_DB": "x" * 64}, "at most 63 bytes"),
        # `run` appends "_run_" and a time stamp on an external server.
        ({"MONGO_DB": "x" * 50, "MONGO_URL": "mongodb://db:27017"}, "at most 44"),
    ],
)
def test_bad_mongo_db_is_named(tmp_path, environ, fragment):
    with pytest.raises(ConfigError, match=fragment) as raised:
        local_config.from_environment(environ=environ, state_dir=tmp_path)
    assert str(raised.value).startswith("MONGO_DB: ")


def test_fresh_database_name_fits_mongodb(tmp_path):
    environ = {"MONGO_DB": "x" * 44, "MONGO_URL": "mongodb://db:27017"}
    config = local_config.from_environment(environ=environ, state_dir=tmp_path)

    fresh = config.with_fresh_database().mongo_db

    assert fresh.startswith("x" * 44 + "_run_")
    assert len(fresh) == 63


def test_down_command_names_make_for_default_state_dir():
    stack = LocalStack(local_config.from_environment(environ={}))

    assert stack.down_command().startswith("`make local-down`")


def test_down_command_names_other_state_dir(tmp_path):
    stack = LocalStack(local_config.from_environment(environ={}, state_dir=tmp_path))

    command = stack.down_command()

    assert "make" not in command
    assert f"--state-dir {tmp_path.resolve()}" in command


# Records


def test_random_records_pass_router_validation():
    rng = random.Random(7)
    for _ in range(2000):
        validate_case(records.random_record(rng))


def test_record_choices_match_router_rules():
    assert set(records.STATE_WEIGHTS_UNDER_60) == set(STATES)
    assert set(records.STATE_WEIGHTS_60_AND_OVER) == set(STATES)
    assert set(records.INFECTED_TYPE_WEIGHTS) == set(INFECTED_TYPES)


def test_random_records_use_every_location():
    rng = random.Random(11)
    seen = {records.random_record(rng)["location"] for _ in range(20000)}
    assert seen == {location for location, _ in records.LOCATIONS}


def test_sample_traffic_file_is_valid():
    sample = records.load_traffic(REPO_ROOT / "load" / "traffic.sample.json")
    assert len(sample) >= 3
    for record in sample:
        validate_case(record)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"name": "x"}', "expected a JSON array of record objects, got a JSON object"),
        ("[1, 2]", "item 0 is a JSON number, expected an object"),
        ("[]", "the array is empty"),
        ("[{", "invalid JSON"),
    ],
)
def test_bad_traffic_file_is_explained(tmp_path, content, fragment):
    path = tmp_path / "traffic.json"
    path.write_text(content)
    with pytest.raises(records.TrafficFileError, match=fragment) as raised:
        records.load_traffic(path)
    assert str(path) in str(raised.value)


def test_locust_stops_on_bad_traffic_file(tmp_path):
    path = tmp_path / "traffic.json"
    path.write_text('"not an array"')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(REPO_ROOT / "load" / "locustfile.py"),
            "--headless",
            "--run-time",
            "1s",
            "--host",
            "http://127.0.0.1:9",
            "--traffic-file",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=runner_environment(),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"traffic file {path}: expected a JSON array" in result.stderr


# Locust statistics


def _stats_entry(times: dict[str, int], failures: int = 0) -> dict:
    total = sum(times.values())
    return {
        "name": "/cases",
        "method": "POST",
        "num_requests": total,
        "num_failures": failures,
        "total_response_time": sum(float(ms) * n for ms, n in times.items()),
        "max_response_time": max(float(ms) for ms in times),
        "response_times": times,
        "start_time": 100.0,
        "last_request_timestamp": 110.0,
    }


def test_stats_percentiles_follow_histogram():
    totals = check_stats.totals([_stats_entry({"10": 90, "50": 9, "200": 1})])
    assert totals.requests == 100
    assert totals.p50_ms == 10
    assert totals.p95_ms == 50
    assert totals.p99_ms == 50
    assert totals.max_ms == 200


def test_stats_check_fails_on_failure_ratio(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps([_stats_entry({"10": 100}, failures=5)]))
    assert check_stats.main([str(path), "--max-fail-ratio", "0.01"]) == 1
    assert check_stats.main([str(path), "--max-fail-ratio", "0.05"]) == 0


def test_stats_check_fails_without_requests(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text("[]")
    assert check_stats.main([str(path)]) == 1


def test_stats_check_rejects_other_json(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text('{"requests": 1}')
    assert check_stats.main([str(path)]) == 2


# Run summary


def _responses_file(tmp_path: Path, lines: list[dict]) -> Path:
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_responses_are_classified(tmp_path):
    path = _responses_file(
        tmp_path,
        [
            {"status": 201, "record_id": "a", "path": "grpc"},
            {"status": 200, "record_id": "b", "path": "grpc", "duplicate": True},
            {"status": 201, "record_id": None, "path": None},
            {"status": 400, "record_id": None, "path": None},
            {"status": 503, "record_id": None, "path": None},
            {"status": 0, "record_id": None, "path": None},
        ],
    )
    responses = read_responses(path)
    assert responses.sent == 6
    assert responses.accepted_new == 1
    assert responses.accepted_duplicate == 1
    assert responses.rejected == 1
    assert responses.failed == 3
    assert responses.accepted_ids == {"a": "grpc", "b": "grpc"}


def _store_state(
    ids: list[str], by_path: dict[str, int], redis_total: int
) -> StoreState:
    return StoreState(
        mongo_documents=len(ids),
        mongo_ids=frozenset(ids),
        stored_by_path=by_path,
        first_received=datetime(2024, 1, 1, tzinfo=UTC),
        last_stored=datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC),
        redis_total=redis_total,
        redis_by_path=by_path,
    )


def _summary(responses: Responses, stores: StoreState, weights: str) -> dict:
    return build_summary(
        duration_s=10,
        users=1,
        route_weights=weights,
        mongo_db="covid",
        responses=responses,
        stores=stores,
        locust=None,
    )


def _responses(accepted: dict[str, str]) -> Responses:
    return Responses(
        sent=len(accepted),
        accepted_new=len(accepted),
        accepted_duplicate=0,
        rejected=0,
        failed=0,
        by_status={201: len(accepted)},
        accepted_ids=accepted,
    )


def test_summary_counts_lost_records():
    responses = _responses({"a": "grpc", "b": "redis", "c": "redis"})
    stores = _store_state(["a", "b"], {"grpc": 1, "redis": 1}, redis_total=2)
    summary = _summary(responses, stores, "grpc=50,redis=50")
    assert summary["lost"] == 1
    assert summary["lost_record_ids"] == ["c"]
    assert summary["passed"] is False
    assert summary["throughput"]["stored_per_s"] == 0.2


def test_summary_fails_when_a_path_gets_nothing():
    responses = _responses({"a": "grpc"})
    stores = _store_state(["a"], {"grpc": 1}, redis_total=1)
    summary = _summary(responses, stores, "grpc=50,redis=50")
    assert summary["problems"] == ["the redis path accepted no records"]


def test_summary_ignores_path_with_zero_weight():
    responses = _responses({"a": "grpc"})
    stores = _store_state(["a"], {"grpc": 1}, redis_total=1)
    summary = _summary(responses, stores, "grpc=100,redis=0")
    assert summary["passed"] is True, summary["problems"]


def test_summary_flags_redis_mismatch():
    responses = _responses({"a": "grpc", "b": "redis"})
    stores = _store_state(["a", "b"], {"grpc": 1, "redis": 1}, redis_total=3)
    summary = _summary(responses, stores, "grpc=50,redis=50")
    assert summary["duplicated"]["redis_total_minus_mongo_records"] == 1
    assert summary["passed"] is False


def test_router_outlasts_nginx_idle_connections(monkeypatch):
    # gunicorn_conf reads the service's port when it is imported.
    monkeypatch.setenv(names.Env.HTTP_PORT, "1")
    monkeypatch.delitem(sys.modules, "covid_common.gunicorn_conf", raising=False)
    gunicorn_conf = importlib.import_module("covid_common.gunicorn_conf")

    # If gunicorn closed an idle connection first, nginx could send a POST on
    # it as it closes, and would return 502 without resending it.
    assert gunicorn_conf.keepalive > nginx.UPSTREAM_KEEPALIVE_S
