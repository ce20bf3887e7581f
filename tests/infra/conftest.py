"""Recordings of the Pulumi program under mocks, one per stack, built once a session.

Building a stack runs the whole program in a child process (see
covid_infra/mocked.py), so each recording takes a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from covid_infra.mocked import REPO_ROOT, Recording, record_stack, stack_config

# Default values.yaml (and schemas) of the pinned charts. CI lays shared/ beside the
# clone, as it is beside the repository here.
CHARTS_DIR = REPO_ROOT.parent / "shared" / "charts"
EXTERNAL_MONGO_URL = (
    "mongodb+srv://covid:atlas-mock-secret-4f1d2c@cluster0.example.net/covid"
)
STACKS = ("kind", "existing")


@pytest.fixture(scope="session")
def charts_dir() -> Path:
    if not CHARTS_DIR.is_dir():
        pytest.fail(
            f"chart defaults not found at {CHARTS_DIR}: the infra tests read each "
            "pinned chart's values.yaml from shared/charts beside the repository"
        )
    return CHARTS_DIR


@pytest.fixture(scope="session")
def kind_recording() -> Recording:
    return record_stack("kind")


@pytest.fixture(scope="session")
def existing_recording() -> Recording:
    return record_stack("existing")


@pytest.fixture(scope="session")
def external_mongo_recording() -> Recording:
    return record_stack(
        "existing", extra_secrets={"covid:mongoUrl": EXTERNAL_MONGO_URL}
    )


@pytest.fixture(params=STACKS)
def recording(request: pytest.FixtureRequest) -> Recording:
    return request.getfixturevalue(f"{request.param}_recording")


def kubernetes_version(stack: str) -> str:
    return stack_config(stack)["covid:kubernetesVersion"]
