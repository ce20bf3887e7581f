"""The benchmark in smoke mode: short rows on a whole local stack, nothing lost.

No speed is asserted; the full benchmark (`make bench`) records the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_bench_smoke_loses_nothing(tmp_path):
    output = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "apps"), str(REPO_ROOT)])
    for variable in ("MONGO_URL", "REDIS_URL", "MONGO_DB", "LOCAL_PORTS"):
        env.pop(variable, None)

    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "run.py"),
            "--smoke",
            "--duration",
            "2",
            "--json",
            str(output),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(output.read_text())["rows"]
    names = [(row["name"], row["generator"]) for row in rows]
    assert names == [
        ("baseline", "wrk"),
        ("max", "wrk"),
        ("80%", "wrk"),
        ("max", "Locust"),
        ("batch 100", "wrk"),
    ]
    for row in rows:
        assert row["load"]["accepted"] > 0, row["name"]
        assert row["lost"] == 0, row["name"]
    for row in rows[1:]:
        assert row["stored"] >= row["load"]["accepted"], row["name"]
        assert row["cpu_s"]["router"] > 0, row["name"]
