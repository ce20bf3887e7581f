"""Starting and stopping a stack through the Python API: checks, status and clean-up."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator

import pytest
import urllib3

from local.config import INGRESS, free_port, with_free_ports
from local.health import StackError
from local.procs import ProcessId, is_alive
from local.stack import LocalStack
from observability import rules
from tests.e2e.conftest import make_state_dir, remove_state_dir


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[LocalStack, list[ProcessId]]]:
    """A started stack and every process it ran once it was up."""
    state_dir = make_state_dir("life")
    stack = LocalStack(with_free_ports(state_dir))
    stack.start(timeout_s=120)
    try:
        yield stack, stack.running_processes()
    finally:
        stack.stop()
        remove_state_dir(state_dir)


def test_busy_port_stops_start_with_its_name():
    state_dir = make_state_dir("busy")
    config = with_free_ports(state_dir)
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", config.ports[INGRESS]))
            listener.listen()
            with pytest.raises(StackError) as raised:
                LocalStack(config).start(timeout_s=30)
        assert f"ingress {config.ports[INGRESS]}" in str(raised.value)
        assert not (state_dir / "supervisord.pid").exists()
    finally:
        remove_state_dir(state_dir)


def test_status_lists_every_program_running(running):
    stack, _ = running
    states = {state.name: state.state for state in stack.status()}
    expected = {program.name for program in stack.programs}
    assert set(states) == expected
    assert set(states.values()) == {"RUNNING"}, states


def test_every_service_is_supervised(running):
    stack, processes = running
    # supervisord, both stores, nginx and Prometheus, and each service.
    assert len(stack.config.services) >= 5, stack.config.services
    assert len(processes) >= 5 + len(stack.config.services)


def test_prometheus_loads_alert_rules(running):
    stack, _ = running
    response = urllib3.PoolManager().request(
        "GET", stack.config.prometheus_url + "/api/v1/rules", timeout=10
    )

    assert response.status == 200
    groups = json.loads(response.data)["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == {alert.name for alert in rules.ALERTS}


def test_second_start_in_same_state_dir_fails(running):
    stack, _ = running
    other_ports = {name: free_port() for name in stack.config.ports}
    second = LocalStack(dataclasses.replace(stack.config, ports=other_ports))
    with pytest.raises(StackError, match="already runs"):
        second.start(timeout_s=30)


def test_stop_leaves_no_process(running):
    stack, processes = running
    report = stack.stop()
    assert report.killed == ()
    left = [process for process in processes if is_alive(process)]
    assert left == []
    assert stack.running_processes() == []
