"""`python -m local run` as a user starts it: a short load run, Ctrl-C and SIGKILL.

Each test kills whatever the runner left running before it removes the state
directory, so a failing test leaves no processes behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from covid_common import names

from local.config import REPO_ROOT, StackConfig, with_free_ports
from local.procs import ProcessId, descendants, is_alive, kill, wait_gone
from local.programs import StatePaths, serial_stop_bound_s
from local.run import LOCUST_STOP_WAIT_S, interrupt_bound_s
from local.stack import LocalStack
from local.supervisor import Supervisor
from tests.e2e.conftest import (
    make_state_dir,
    port_arguments,
    remove_state_dir,
    runner_environment,
)

RUN_SECONDS = 10
# Seconds for the runner's interpreter to exit once the stack is stopped, or for
# the last process to be reaped, on a busy machine.
EXIT_MARGIN_S = 10


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_runner(
    config: StackConfig, output: Path, duration_s: int, background: bool = False
) -> subprocess.Popen:
    """Start `python -m local run` on the ports of `config`.

    With `background`, the runner starts with SIGINT ignored, as a shell starts
    a background job (`make local &`).
    """
    state_dir = config.state_dir
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
            preexec_fn=_ignore_sigint if background else None,
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


def _wait_for_load(
    runner: subprocess.Popen, state_dir: Path, seen: set[ProcessId]
) -> None:
    """Wait until Locust records responses, because the whole stack is up then."""
    responses = state_dir / "locust" / "responses.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and runner.poll() is None:
        seen.update(descendants(runner.pid))
        if responses.exists() and responses.stat().st_size > 0:
            break
        time.sleep(0.5)
    assert runner.poll() is None, _runner_output(state_dir)
    assert responses.exists(), "Locust sent nothing within 180 s"
    seen.update(descendants(runner.pid))


def _kill_leftovers(
    runner: subprocess.Popen, state_dir: Path, seen: set[ProcessId]
) -> None:
    """SIGKILL the runner, its supervisord and every process under either of them."""
    found = set(seen)
    if runner.poll() is None:
        found.update(descendants(runner.pid))
    # Once the runner is gone, its supervisord is no longer its descendant.
    supervisord = Supervisor(StatePaths(state_dir)).running_pid()
    if supervisord is not None:
        found.add(supervisord)
        found.update(descendants(supervisord.pid))
    if runner.poll() is None:
        runner.kill()
    runner.wait()
    kill(list(found))
    wait_gone(list(found), EXIT_MARGIN_S)


def test_run_stores_every_accepted_record(tmp_path):
    state_dir = make_state_dir("run")
    output = tmp_path / "summary.json"
    runner = _start_runner(with_free_ports(state_dir), output, RUN_SECONDS)
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
        _kill_leftovers(runner, state_dir, seen)
        remove_state_dir(state_dir)


def test_sigint_stops_every_process(tmp_path):
    state_dir = make_state_dir("sigint")
    config = with_free_ports(state_dir)
    output = tmp_path / "summary.json"
    # A runner in the foreground handles SIGINT anyway; a background job is
    # the harder case, because it inherits SIGINT ignored.
    runner = _start_runner(config, output, duration_s=300, background=True)
    seen: set[ProcessId] = set()
    try:
        _wait_for_load(runner, state_dir, seen)
        commands = " ".join(process.command for process in seen)
        assert "locust" in commands or "python" in commands, commands

        runner.send_signal(signal.SIGINT)
        limit_s = interrupt_bound_s(LocalStack(config)) + EXIT_MARGIN_S
        try:
            status = runner.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the runner did not exit within {limit_s:.0f} s of SIGINT:\n"
                + _runner_output(state_dir)
            )

        assert status == 130, _runner_output(state_dir)
        assert [p for p in seen if is_alive(p)] == []
        assert not output.exists()
    finally:
        _kill_leftovers(runner, state_dir, seen)
        remove_state_dir(state_dir)


def test_sigkill_of_runner_stops_stack(tmp_path):
    state_dir = make_state_dir("sigkill")
    config = with_free_ports(state_dir)
    output = tmp_path / "summary.json"
    runner = _start_runner(config, output, duration_s=300)
    seen: set[ProcessId] = set()
    try:
        _wait_for_load(runner, state_dir, seen)
        supervisord = Supervisor(StatePaths(state_dir)).running_pid()
        assert supervisord is not None
        assert supervisord in seen
        assert len(seen) > 10, seen

        runner.kill()
        runner.wait()
        # supervisord stops its programs one at a time after the runner's death;
        # Locust stops at the same time.
        stack_programs = LocalStack(config).programs
        limit_s = (
            max(serial_stop_bound_s(stack_programs), LOCUST_STOP_WAIT_S) + EXIT_MARGIN_S
        )
        left = wait_gone(sorted(seen, key=lambda p: p.pid), limit_s)

        assert left == [], f"still running {limit_s:.0f} s after SIGKILL: {left}"
        supervisord_log = (state_dir / "logs" / "supervisord.log").read_text()
        assert "received SIGTERM" in supervisord_log
    finally:
        _kill_leftovers(runner, state_dir, seen)
        remove_state_dir(state_dir)
