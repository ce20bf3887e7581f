"""Oversized and bad bodies through the local stack's nginx: JSON errors only.

nginx lets bodies up to local.nginx.MAX_BODY_KIB through (MAX_BATCH_BODY_KIB for
POST /cases/batch), so the router's 413 reaches the client; larger bodies get
nginx's own JSON 413.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from covid_common import names
from covid_common.config import RouterConfig
from router.app import create_app as create_router
from router.batch import MAX_BATCH_BODY_BYTES

from local import nginx
from local.procs import descendants
from tests.integration.support import HTTP, AppServer, sample_case
from tests.support.servers import free_port, wait_until

JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Ingress:
    url: str
    master_pid: int


@pytest.fixture(scope="module")
def ingress():
    """nginx on a free port in front of a router whose paths are never reached."""
    unreachable = f"http://127.0.0.1:{free_port()}"
    router = AppServer(
        create_router(
            RouterConfig(
                "WARNING",
                0,
                {names.PATH_GRPC: 50, names.PATH_REDIS: 50},
                {names.PATH_GRPC: unreachable, names.PATH_REDIS: unreachable},
                2.0,
            ),
            random.Random(1),
        )
    )
    # The directory keeps mkdtemp's mode 0700, as the local stack's test state
    # directories do, and nginx's workers must still write temporary files in it.
    state_dir = Path(tempfile.mkdtemp(prefix="covid-ingress-"))
    (state_dir / "nginx" / "tmp").mkdir(parents=True)
    (state_dir / "logs").mkdir()
    port = free_port()
    conf = state_dir / "nginx" / "nginx.conf"
    conf.write_text(nginx.render(port, router.port, state_dir))
    process = subprocess.Popen(
        [
            shutil.which("nginx") or "/usr/sbin/nginx",
            "-p",
            str(state_dir / "nginx"),
            "-c",
            str(conf),
            "-e",
            str(state_dir / "logs" / "nginx-error.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: HTTP.request("GET", url + "/healthz").status == 200,
            "nginx proxying to the router",
        )
        yield Ingress(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
        router.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


def _effective_uid(pid: int) -> int:
    # The Uid line of /proc/PID/status lists the real, effective, saved and
    # file-system user ids.
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    raise AssertionError(f"no Uid line in /proc/{pid}/status")


def post(url: str, data: bytes, headers: dict = JSON):
    response = HTTP.request("POST", url + names.CASES_ROUTE, body=data, headers=headers)
    return response.status, response.headers.get("Content-Type"), response.json()


def test_router_limit_answers_through_nginx(ingress):
    data = b'{"name": "' + b"x" * 20_000 + b'"}'

    status, content_type, error = post(ingress.url, data)

    assert status == 413
    assert content_type == "application/json"
    assert error["fields"] == {"body": "must be at most 16384 bytes"}


def test_nginx_limit_answers_json(ingress):
    data = b'{"name": "' + b"x" * (nginx.MAX_BODY_KIB * 1024 + 10) + b'"}'

    status, content_type, error = post(ingress.url, data)

    assert status == 413
    assert content_type == "application/json"
    assert error["error"] == "payload_too_large"
    assert error["fields"] == {"body": f"must be at most {nginx.MAX_BODY_KIB} KiB"}


def test_chunked_body_over_nginx_limit_is_json(ingress):
    chunks = [b"x" * 8192] * (nginx.MAX_BODY_KIB // 8 + 2)

    response = HTTP.request(
        "POST",
        ingress.url + names.CASES_ROUTE,
        body=iter(chunks),
        headers=JSON,
        chunked=True,
    )

    assert response.status == 413
    assert response.json()["fields"]["body"]


def test_bad_fields_through_nginx_match_router(ingress):
    data = b'{"name": "Ana", "age": "x"}'

    status, content_type, error = post(ingress.url, data)

    assert status == 422
    assert content_type == "application/json"
    assert set(error["fields"]) == {"age", "location", "infected_type", "state"}


def test_valid_case_reaches_router(ingress):
    status, _, error = post(ingress.url, json.dumps(sample_case()).encode())

    # The paths are unreachable on purpose, so the router returns a JSON 502.
    assert status == 502
    assert error["error"] == "downstream_unreachable"


def test_workers_run_as_invoking_user(ingress):
    workers = descendants(ingress.master_pid)

    assert workers, "nginx started no worker process"
    for worker in workers:
        assert _effective_uid(worker.pid) == os.geteuid(), worker


def post_batch(url: str, data: bytes):
    response = HTTP.request(
        "POST", url + names.CASES_BATCH_ROUTE, body=data, headers=JSON
    )
    return response.status, response.headers.get("Content-Type"), response.json()


def test_batch_over_single_limit_reaches_router(ingress):
    # 400 cases are over nginx's limit for single records and under the
    # router's batch limit, so the router returns a result for each item.
    data = json.dumps([sample_case() for _ in range(400)]).encode()
    assert len(data) > nginx.MAX_BODY_KIB * 1024

    status, content_type, reply = post_batch(ingress.url, data)

    assert status == 200
    assert content_type == "application/json"
    assert len(reply["results"]) == 400


def test_batch_over_router_limit_answers_router_413(ingress):
    data = b'[{"name": "' + b"x" * (MAX_BATCH_BODY_BYTES + 10) + b'"}]'

    status, content_type, error = post_batch(ingress.url, data)

    assert status == 413
    assert content_type == "application/json"
    assert error["error"] == "payload_too_large"


def test_batch_over_nginx_limit_answers_json(ingress):
    data = b'[{"name": "' + b"x" * (nginx.MAX_BATCH_BODY_KIB * 1024 + 10) + b'"}]'

    status, content_type, error = post_batch(ingress.url, data)

    limit = nginx.MAX_BATCH_BODY_KIB
    assert status == 413
    assert content_type == "application/json"
    assert error["fields"] == {"body": f"must be at most {limit} KiB"}
