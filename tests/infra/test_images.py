"""Image tags: a hash of exactly the files a Dockerfile copies into the image."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from covid_common import names
from covid_infra import images
from covid_infra.images import (
    DockerfileError,
    content_tag,
    copy_sources,
    dockerfile_path,
)


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


def _dockerignore_patterns(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # Docker's rules: * and ? stop at "/", ** spans directories, and a pattern
    # that matches a directory excludes everything under it.
    text = pattern.strip("/")
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", text)
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    body = "".join(wildcards.get(part, re.escape(part)) for part in parts)
    return re.compile(f"{body}(?:/.*)?")


def _docker_ignores(relative: str, patterns: list[str]) -> bool:
    """Return whether `relative` stays out of the build context.

    The last pattern that matches decides.
    """
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _pattern_regex(pattern.lstrip("!")).fullmatch(relative):
            ignored = not negated
    return ignored


def test_dockerignore_matcher_follows_docker_rules():
    patterns = ["build", "**/__pycache__", "**/*.pyc", "!keep.pyc"]

    assert _docker_ignores("build/local/x.json", patterns)
    assert _docker_ignores("apps/live/__pycache__/app.cpython-311.pyc", patterns)
    assert _docker_ignores("app.pyc", patterns)
    assert not _docker_ignores("keep.pyc", patterns)
    assert not _docker_ignores("apps/builder.py", patterns)


@pytest.mark.parametrize("service", names.ALL_SERVICES, ids=lambda s: s.name)
def test_context_sends_what_tag_hashes(service, tmp_path):
    repo_root = Path(__file__).resolve().parents[2]
    patterns = _dockerignore_patterns(repo_root / ".dockerignore")
    dockerfile = dockerfile_path(repo_root, service)
    # Cache files inside a copied folder: the tag must skip them and the
    # context must leave them out.
    package = repo_root / "apps" / service.package
    cache = package / "__pycache__" / f"probe-{tmp_path.name}.cpython-311.pyc"
    created_dir = not cache.parent.exists()
    cache.parent.mkdir(exist_ok=True)
    cache.write_bytes(b"\0")
    try:
        hashed = set()
        for source in copy_sources(dockerfile):
            hashed.update(images._context_files(repo_root, dockerfile, source))
        candidates = {
            path
            for source in copy_sources(dockerfile)
            for match in repo_root.glob(source)
            for path in ([match] if match.is_file() else match.rglob("*"))
            if path.is_file()
        }
        assert cache in candidates
        for path in candidates:
            relative = path.relative_to(repo_root).as_posix()
            sent = not _docker_ignores(relative, patterns)
            assert sent == (path in hashed), relative
        dockerfile_relative = dockerfile.relative_to(repo_root).as_posix()
        assert not _docker_ignores(dockerfile_relative, patterns)
    finally:
        cache.unlink()
        if created_dir:
            # Another process may have written byte code there meanwhile.
            with contextlib.suppress(OSError):
                cache.parent.rmdir()
