"""Helpers to run the services for integration tests on free loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import urllib3
from flask import Flask
from werkzeug.serving import make_server

from tests.support.servers import free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=10))


def sample_case(**changes) -> dict:
    case = {
        "name": "Pablo Mendoza",
        "location": "Guatemala City",
        "age": 35,
        "infected_type": "communitary",
        "state": "asymptomatic",
    }
    case.update(changes)
    return case


class AppServer:
    """A Flask app served over real HTTP from a thread, on a free port."""

    def __init__(self, app: Flask, port: int | None = None):
        self.port = port or free_port()
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class ServiceProcess:
    """A service started as `python -m <module>` or by gunicorn, with its log kept."""

    def __init__(self, command: list[str], env: Mapping[str, str], log_path: Path):
        self.log_path = log_path
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO_ROOT / "apps"), str(REPO_ROOT / "infra"), str(REPO_ROOT)]
            ),
            **env,
        }
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=full_env, stdout=log, stderr=subprocess.STDOUT
            )

    @classmethod
    def module(cls, module: str, env: Mapping[str, str], log_path: Path):
        return cls([sys.executable, "-m", module], env, log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 15) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)


def post_json(
    url: str, body: object, timeout_s: float = 10
) -> urllib3.BaseHTTPResponse:
    return HTTP.request(
        "POST", url, json=body, timeout=urllib3.Timeout(total=timeout_s)
    )


def get(url: str, timeout_s: float = 5) -> urllib3.BaseHTTPResponse:
    return HTTP.request("GET", url, timeout=urllib3.Timeout(total=timeout_s))


def wait_ready(base_url: str, what: str, timeout_s: float = 30) -> None:
    wait_until(lambda: get(base_url + "/readyz").status == 200, what, timeout_s)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum the samples of `name` whose labels include `labels` in exposition text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{val}"' in label_text for key, val in labels.items()):
            total += float(value)
    return total
