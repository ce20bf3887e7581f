"""`python -m local run` as a user starts it: a short load run, and Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from covid_common import names

from local.config import REPO_ROOT, with_free_ports
from local.procs import ProcessId, descendants, is_alive
from tests.e2e.conftest import (
    make_state_dir,
    port_arguments,
    remove_state_dir,
    runner_environment,
)

RUN_SECONDS = 10


def _start_runner(state_dir: Path, output: Path, duration_s: int) -> subprocess.Popen:
    config = with_free_ports(state_dir)
    command = [
        sys.executable,
        "-m",
        "local",
        "run",
        "--duration",
        str(duration_s),
        "--users",
        "5",
        "--output",
        str(output),
        "--state-dir",
        str(state_dir),
        *port_arguments(config),
    ]
    log = (state_dir.parent / f"{state_dir.name}-runner.log").open("wb")
    try:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=runner_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _runner_output(state_dir: Path) -> str:
    return (state_dir.parent / f"{state_dir.name}-runner.log").read_text(
        errors="replace"
    )


def _watch(runner: subprocess.Popen, seen: set[ProcessId], until: float) -> None:
    """Collect the runner's descendants until it exits or `until` passes."""
    while runner.poll() is None and time.monotonic() < until:
        seen.update(descendants(runner.pid))
        time.sleep(0.5)


def test_run_stores_every_accepted_record(tmp_path):
    state_dir = make_state_dir("run")
    output = tmp_path / "summary.json"
    runner = _start_runner(state_dir, output, RUN_SECONDS)
    seen: set[ProcessId] = set()
    try:
        _watch(runner, seen, until=time.monotonic() + RUN_SECONDS + 180)
        status = runner.wait(timeout=10)
        log = _runner_output(state_dir)
        assert status == 0, log

        summary = json.loads(output.read_text())
        assert summary["passed"] is True, summary["problems"]
        assert summary["lost"] == 0
        assert summary["requests"]["accepted"] > 0
        assert summary["requests"]["failed"] == 0
        for path in names.PATHS:
            counts = summary["paths"][path]
            assert counts["accepted"] > 0, (path, counts)
            assert counts["stored"] == counts["accepted"], (path, counts)
            assert counts["redis_count"] == counts["accepted"], (path, counts)
        assert summary["redis_total"] == summary["mongo"]["records"]
        assert summary["latency_ms"]["p99"] is not None
        assert "PASSED" in log

        # The stack ran dozens of processes; none may outlive the runner.
        assert len(seen) > 10, seen
        assert [p for p in seen if is_alive(p)] == []
    finally:
        if runner.poll() is None:
            runner.kill()
        remove_state_dir(state_dir)


def test_sigint_stops_every_process(tmp_path):
    state_dir = make_state_dir("sigint")
    output = tmp_path / "summary.json"
    runner = _start_runner(state_dir, output, duration_s=300)
    responses = state_dir / "locust" / "responses.jsonl"
    seen: set[ProcessId] = set()
    try:
        deadline = time.monotonic() + 180
        # Wait until Locust records responses, because the whole stack is up then.
        while time.monotonic() < deadline and runner.poll() is None:
            seen.update(descendants(runner.pid))
            if responses.exists() and responses.stat().st_size > 0:
                break
            time.sleep(0.5)
        assert runner.poll() is None, _runner_output(state_dir)
        assert responses.exists(), "Locust sent nothing within 180 s"
        seen.update(descendants(runner.pid))
        commands = " ".join(process.command for process in seen)
        assert "locust" in commands or "python" in commands, commands

        runner.send_signal(signal.SIGINT)
        status = runner.wait(timeout=150)

        assert status == 130, _runner_output(state_dir)
        assert [p for p in seen if is_alive(p)] == []
        assert not output.exists()
    finally:
        if runner.poll() is None:
            runner.kill()
        remove_state_dir(state_dir)
