"""Write every Kubernetes object the program declares as YAML, without a cluster.

    python -m covid_infra.render --stack kind --out build/manifests/kind

The program runs under mocks (see mocked.py). Each object lands in its own file;
Helm releases and remote manifests, which expand only on a cluster, are listed
with their pinned chart or URL and their values. Secret values are written as
"[secret]".
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

from covid_infra.mocked import SECRET_MARKER, STACKS, Recording, record_stack

REDACTED = "[secret]"
HELM_RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
CONFIG_FILE_TYPE = "kubernetes:yaml/v2:ConfigFile"


def redact(value: Any, in_secret: bool = False) -> Any:
    """Replace every secret value in recorded inputs with a placeholder.

    A secret map or list keeps its shape, so a Secret's stringData still
    validates: only its leaves become the placeholder.
    """
    if isinstance(value, dict):
        if set(value) == {SECRET_MARKER}:
            return redact(value[SECRET_MARKER], in_secret=True)
        return {key: redact(item, in_secret) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, in_secret) for item in value]
    return REDACTED if in_secret else value


def object_file_name(manifest: dict) -> str:
    metadata = manifest.get("metadata", {})
    parts = [manifest["kind"], metadata.get("namespace", "cluster"), metadata["name"]]
    return re.sub(r"[^a-z0-9.-]+", "-", ".".join(parts).lower()) + ".yaml"


def render(recording: Recording, out_dir: Path) -> list[Path]:
    """Write the recording's objects under out_dir, replacing earlier output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.yaml"):
        old.unlink()

    written = []
    for registration in recording.kubernetes_objects():
        manifest = redact(registration.inputs)
        path = out_dir / object_file_name(manifest)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)

    releases = [
        redact(registration.inputs)
        for registration in recording.of_type(HELM_RELEASE_TYPE)
    ]
    remote = [
        {"name": registration.name, **redact(registration.inputs)}
        for registration in recording.of_type(CONFIG_FILE_TYPE)
    ]
    for name, documents in (
        ("helm-releases.yaml", releases),
        ("remote-manifests.yaml", remote),
    ):
        path = out_dir / name
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Render the stack's Kubernetes objects."
    )
    parser.add_argument("--stack", choices=STACKS, default="kind")
    parser.add_argument(
        "--out", type=Path, help="output folder (build/manifests/<stack>)"
    )
    options = parser.parse_args()
    out_dir = options.out or Path("build") / "manifests" / options.stack

    written = render(record_stack(options.stack), out_dir)
    print(f"wrote {len(written)} files to {out_dir}")


if __name__ == "__main__":
    main()
