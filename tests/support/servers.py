"""Real Redis and SecantusDB servers for tests, each on a free loopback port.

Integration tests run against these processes, never against mocks. Each server
is started with its data in a temporary directory and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pymongo
import redis


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Poll `check` until it returns True; raise naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as error:  # noqa: BLE001 - any failure means "not yet"
            last_error = error
        time.sleep(0.05)
    raise TimeoutError(
        f"timed out after {timeout_s} s waiting for {what}: {last_error!r}"
    )


@dataclass
class ServerProcess:
    name: str
    url: str
    port: int
    process: subprocess.Popen
    data_dir: Path
    command: list[str]

    def stop(self, sig_kill: bool = False) -> None:
        if self.process.poll() is None:
            if sig_kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def start(self) -> None:
        """Start the server, or restart it after stop() on the same port and data."""
        log = open(self.data_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by Popen
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir
        )
        log.close()


def _start(
    name: str, command: list[str], port: int, url: str, data_dir: Path
) -> ServerProcess:
    server = ServerProcess(name, url, port, None, data_dir, command)  # type: ignore[arg-type]
    server.start()
    return server


def start_redis(data_dir: Path) -> ServerProcess:
    port = free_port()
    command = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
    ]
    server = _start("redis", command, port, f"redis://127.0.0.1:{port}/0", data_dir)
    client = redis.Redis.from_url(server.url)
    wait_until(client.ping, f"redis-server on port {port}")
    client.close()
    return server


def start_secantus(data_dir: Path) -> ServerProcess:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "secantus",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(data_dir / "secantus-data"),
        "--log-level",
        "WARNING",
    ]
    # retryWrites=false: SecantusDB slows from about 2,000 to about 170 inserts/s
    # after some 10,000 writes when pymongo's retryable writes are on.
    url = f"mongodb://127.0.0.1:{port}/?retryWrites=false"
    server = _start("secantus", command, port, url, data_dir)

    def answers() -> bool:
        with pymongo.MongoClient(url, serverSelectionTimeoutMS=500) as client:
            client.admin.command("ping")
        return True

    wait_until(answers, f"SecantusDB on port {port}", timeout_s=60)
    return server


@contextlib.contextmanager
def running(starter: Callable[[Path], ServerProcess]) -> Iterator[ServerProcess]:
    data_dir = Path(tempfile.mkdtemp(prefix="covid-test-"))
    server = starter(data_dir)
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("KEEP_TEST_DATA") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)
