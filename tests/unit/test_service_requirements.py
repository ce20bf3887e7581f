"""Each service image pins the same versions as the project's requirements.txt."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("router", "grpc_client", "grpc_server", "redis_pub", "redis_sub")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        assert separator, f"{path}: {line!r} is not pinned with =="
        found[name.strip().lower()] = version.strip()
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_service_pins_match_project(service):
    project = pins(REPO_ROOT / "requirements.txt")
    service_pins = pins(REPO_ROOT / "apps" / service / "requirements.txt")

    mismatched = {
        name: (version, project.get(name))
        for name, version in service_pins.items()
        if project.get(name) != version
    }
    assert service_pins, f"apps/{service}/requirements.txt lists no packages"
    assert not mismatched, f"service pin -> project pin: {mismatched}"
