"""The live image installs the same pinned versions as the root environment."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_image_pins_match_root():
    image = _pins(ROOT / "apps" / "live" / "requirements.txt")
    root = _pins(ROOT / "requirements.txt")

    for name, version in image.items():
        assert version, f"{name} is not pinned with =="
        assert root.get(name) == version, (
            f"{name}: image {version}, root {root.get(name)}"
        )
