"""Run promtool and a throwaway Prometheus for the observability tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.servers import free_port, wait_until


def promtool_path() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's prometheus package")
    return path


def prometheus_path() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("prometheus not found: install Debian's prometheus package")
    return path


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str


def run_promtool(args: Sequence[str], cwd: Path) -> CommandResult:
    completed = subprocess.run(
        [promtool_path(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CommandResult(completed.returncode, completed.stdout + completed.stderr)


def write_yaml(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=10_000))
    return path


def check_expressions(expressions: dict[str, str], directory: Path) -> CommandResult:
    """Parse each PromQL expression with `promtool check rules`.

    Each expression becomes a recording rule named after its key, so promtool's
    parser checks it exactly as Prometheus would load it.
    """
    rules = [
        {"record": f"check:expr_{index}", "expr": expr}
        for index, expr in enumerate(expressions.values())
    ]
    path = write_yaml(
        directory / "expressions.yml", {"groups": [{"name": "parse", "rules": rules}]}
    )
    return run_promtool(["check", "rules", str(path)], directory)


@dataclass
class PrometheusProcess:
    url: str
    process: subprocess.Popen
    data_dir: Path


def _prometheus_ready(url: str) -> bool:
    with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
        return response.status == 200


@contextlib.contextmanager
def running_prometheus(
    scrape_targets: dict[str, Sequence[str]] | None = None,
    scrape_interval: str = "1s",
) -> Iterator[PrometheusProcess]:
    """Start Prometheus on a free loopback port, scraping `scrape_targets`.

    `scrape_targets` maps a job name to host:port addresses. The process is
    stopped by its PID and its data directory removed on exit.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="covid-prometheus-"))
    port = free_port()
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in (scrape_targets or {}).items()
        ],
    }
    config_path = write_yaml(data_dir / "prometheus.yml", config)
    log = open(data_dir / "prometheus.log", "wb")  # noqa: SIM115 - owned by Popen
    process = subprocess.Popen(
        [
            prometheus_path(),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _prometheus_ready(url), f"Prometheus on port {port}")
        yield PrometheusProcess(url, process, data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)
