"""Image tags: a hash of exactly the files a Dockerfile copies into the image."""

from __future__ import annotations

from pathlib import Path

import pytest
from covid_infra.images import DockerfileError, content_tag, copy_sources


def _context(tmp_path: Path, dockerfile: str) -> Path:
    (tmp_path / "apps" / "svc").mkdir(parents=True)
    (tmp_path / "apps" / "shared").mkdir(parents=True)
    (tmp_path / "apps" / "svc" / "main.py").write_text("print('svc')\n")
    (tmp_path / "apps" / "shared" / "lib.py").write_text("VALUE = 1\n")
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\n")
    (tmp_path / "README.md").write_text("not in the image\n")
    path = tmp_path / "apps" / "svc" / "Dockerfile"
    path.write_text(dockerfile)
    return path


DOCKERFILE = """\
FROM python:3.11-slim AS build
COPY requirements.txt /tmp/
RUN pip install -r /tmp/requirements.txt
FROM python:3.11-slim
COPY --from=build /usr/local /usr/local
COPY --chown=10001:10001 apps/shared /app/shared
COPY ["apps/svc", "/app/svc"]
"""


def test_copy_sources_skip_other_stages(tmp_path):
    dockerfile = _context(tmp_path, DOCKERFILE)
    assert copy_sources(dockerfile) == ["requirements.txt", "apps/shared", "apps/svc"]


def test_tag_changes_with_copied_file(tmp_path):
    dockerfile = _context(tmp_path, DOCKERFILE)
    before = content_tag(tmp_path, dockerfile)
    (tmp_path / "apps" / "shared" / "lib.py").write_text("VALUE = 2\n")
    assert content_tag(tmp_path, dockerfile) != before


def test_tag_ignores_uncopied_and_cache_files(tmp_path):
    dockerfile = _context(tmp_path, DOCKERFILE)
    before = content_tag(tmp_path, dockerfile)
    (tmp_path / "README.md").write_text("changed\n")
    cache = tmp_path / "apps" / "svc" / "__pycache__"
    cache.mkdir()
    (cache / "main.cpython-311.pyc").write_bytes(b"\0")
    assert content_tag(tmp_path, dockerfile) == before


def test_tag_changes_with_dockerfile(tmp_path):
    dockerfile = _context(tmp_path, DOCKERFILE)
    before = content_tag(tmp_path, dockerfile)
    dockerfile.write_text(DOCKERFILE + "USER 10001\n")
    assert content_tag(tmp_path, dockerfile) != before


def test_missing_dockerfile_is_named(tmp_path):
    with pytest.raises(DockerfileError, match="Dockerfile not found"):
        copy_sources(tmp_path / "apps" / "nothing" / "Dockerfile")


def test_source_outside_context_rejected(tmp_path):
    dockerfile = _context(tmp_path, "FROM scratch\nCOPY ../secrets /x\n")
    with pytest.raises(DockerfileError):
        content_tag(tmp_path / "apps", dockerfile)


def test_unmatched_source_rejected(tmp_path):
    dockerfile = _context(tmp_path, "FROM scratch\nCOPY apps/missing /x\n")
    with pytest.raises(DockerfileError, match="matches nothing"):
        content_tag(tmp_path, dockerfile)
