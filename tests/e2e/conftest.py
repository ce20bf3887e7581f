"""Fixtures of the end-to-end tests: a whole local stack on free ports.

Each stack keeps its state in a short temporary directory, because
supervisord's Unix socket path must stay under the kernel's 108-byte limit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local.config import APPS_DIR, REPO_ROOT, StackConfig, with_free_ports
from local.stack import LocalStack


def make_state_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"covid-{prefix}-"))


def remove_state_dir(path: Path) -> None:
    if os.environ.get("KEEP_TEST_DATA") != "1":
        shutil.rmtree(path, ignore_errors=True)


def runner_environment() -> dict[str, str]:
    """Return the environment for `python -m local` in a subprocess.

    Store URLs of the developer's shell are left out, so the runner starts its
    own stores.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MONGO_URL", "REDIS_URL", "MONGO_DB", "LOCAL_PORTS")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(APPS_DIR), str(REPO_ROOT)])
    return env


def port_arguments(config: StackConfig) -> list[str]:
    """Return --port options that give the runner the ports of `config`."""
    arguments = []
    for name, port in config.ports.items():
        arguments += ["--port", f"{name}={port}"]
    return arguments


def eventually(
    assertion: Callable[[], None], what: str, timeout_s: float = 30.0
) -> None:
    """Run `assertion` until it passes; after `timeout_s`, fail with its last error.

    `what` describes the awaited condition. A timeout reports it together with
    the mismatch of the last attempt.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            assertion()
            return
        except AssertionError as error:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"still not true after {timeout_s:.0f} s: {what}\n{error}"
                ) from error
        time.sleep(0.25)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """A running local stack with empty stores, stopped after the module's tests."""
    state_dir = make_state_dir("e2e")
    stack = LocalStack(with_free_ports(state_dir))
    stack.start(reset_data=True, timeout_s=120)
    try:
        yield stack
    finally:
        stack.stop()
        remove_state_dir(state_dir)
