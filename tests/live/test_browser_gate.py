"""The browser tests skip without Chromium, except in CI, where they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROWSER_TESTS = ROOT / "tests" / "live" / "test_browser.py"


def _run_browser_tests(ci: str | None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    environment["CHROMIUM_BINARY"] = str(ROOT / "build" / "no-such-chromium")
    if ci is not None:
        environment["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", BROWSER_TESTS],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_chromium_skips_locally():
    result = _run_browser_tests(ci=None)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout
    assert "failed" not in result.stdout


def test_missing_chromium_fails_in_ci():
    result = _run_browser_tests(ci="true")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "local/bootstrap.sh" in result.stdout
