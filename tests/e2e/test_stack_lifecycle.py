"""Starting and stopping a stack through the Python API: checks, status and clean-up."""

from __future__ import annotations

import dataclasses
import fcntl
import ipaddress
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from covid_common import names

from local.config import GRPC_LISTENER, INGRESS, REPO_ROOT, free_port, with_free_ports
from local.health import StackConflict, StackError
from local.procs import ProcessId, is_alive
from local.programs import StatePaths
from local.stack import LocalStack
from observability import rules
from tests.e2e.conftest import (
    make_state_dir,
    port_arguments,
    remove_state_dir,
    runner_environment,
)

# State of a listening socket in /proc/net/tcp (TCP_LISTEN in the kernel).
TCP_LISTEN = "0A"


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
        assert "LOCAL_PORTS=ingress=PORT" in str(raised.value)
        assert "--port ingress=PORT" in str(raised.value)
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


@pytest.mark.parametrize("command", ["run", "up"])
def test_second_command_leaves_stack_running(running, command):
    stack, processes = running
    arguments = ["--state-dir", str(stack.paths.root), *port_arguments(stack.config)]
    if command == "run":
        arguments += ["--duration", "5"]

    result = subprocess.run(
        [sys.executable, "-m", "local", command, *arguments],
        cwd=REPO_ROOT,
        env=runner_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "already runs" in result.stderr, output
    assert "Traceback" not in output
    assert f"python -m local down --state-dir {stack.paths.root}" in result.stderr
    assert [p for p in processes if not is_alive(p)] == []
    states = {state.name: state.state for state in stack.status()}
    assert set(states.values()) == {"RUNNING"}, states


def test_start_during_another_start_fails():
    state_dir = make_state_dir("lock")
    stack = LocalStack(with_free_ports(state_dir))
    try:
        # The lock of a start that is still running in another process.
        with StatePaths(state_dir).start_lock.open("w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(StackConflict, match="is starting"):
                stack.start(timeout_s=30)
        assert not stack.launched
        assert not (state_dir / "supervisord.pid").exists()
    finally:
        stack.stop()
        remove_state_dir(state_dir)


def _listen_addresses(port: int) -> set[str]:
    """Return the local addresses of the TCP sockets listening on `port`."""
    addresses = set()
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] != TCP_LISTEN or int(hex_port, 16) != port:
                continue
            # The kernel prints each 32-bit word of the address in host order,
            # which is little-endian here.
            raw = bytes.fromhex(address)
            words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
            ip = ipaddress.ip_address(b"".join(words))
            # gRPC binds an IPv4 address through an IPv6 socket, as ::ffff:a.b.c.d.
            mapped = getattr(ip, "ipv4_mapped", None)
            addresses.add(str(mapped or ip))
    return addresses


def test_services_listen_on_loopback_only(running):
    stack, _ = running
    ports = {
        service.name: stack.config.ports[service.name]
        for service in stack.config.services
    }
    ports[GRPC_LISTENER] = stack.config.ports[GRPC_LISTENER]
    assert names.ROUTER.name in ports

    for name, port in ports.items():
        addresses = _listen_addresses(port)
        assert addresses == {"127.0.0.1"}, f"{name} port {port}: {addresses}"


def test_stop_leaves_no_process(running):
    stack, processes = running
    report = stack.stop()
    assert report.killed == ()
    left = [process for process in processes if is_alive(process)]
    assert left == []
    assert stack.running_processes() == []
