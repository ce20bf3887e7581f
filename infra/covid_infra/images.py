"""Container images of the services, built from apps/<package>/Dockerfile.

Each image is tagged with a hash of the files its Dockerfile copies in, so a tag
changes exactly when the image content can change and never reads `latest`. A kind
stack loads the images into the cluster's node; an existing stack pushes them to the
configured registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker
from covid_common import names
from pulumi_command import local

from covid_infra.settings import ClusterKind, Settings

TAG_LENGTH = 16
# Files that never reach a running image: byte code and tool caches.
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


class DockerfileError(ValueError):
    """A Dockerfile that cannot be read or names a source outside the context."""


def dockerfile_path(repo_root: Path, service: names.Service) -> Path:
    return repo_root / "apps" / service.package / "Dockerfile"


def copy_sources(dockerfile: Path) -> list[str]:
    """Return the build-context paths that COPY and ADD instructions bring in.

    Instructions with --from copy from another stage, not from the context, so
    they add nothing. Continuation lines are joined first.
    """
    if not dockerfile.is_file():
        raise DockerfileError(
            f"{dockerfile} not found: every service needs a Dockerfile"
        )
    text = dockerfile.read_text().replace("\\\n", " ")
    sources: list[str] = []
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        arguments = words[1].strip()
        if arguments.startswith("["):
            items = json.loads(arguments)
        else:
            items = shlex.split(arguments)
        flags = [item for item in items if item.startswith("--")]
        paths = [item for item in items if not item.startswith("--")]
        if any(flag.startswith("--from") for flag in flags) or len(paths) < 2:
            continue
        sources.extend(paths[:-1])
    return sources


def _context_files(context: Path, dockerfile: Path, source: str) -> Iterator[Path]:
    matches = (
        sorted(context.glob(source.lstrip("/")))
        if source not in (".", "./")
        else [context]
    )
    if not matches:
        raise DockerfileError(
            f"COPY source {source!r} in {dockerfile} matches nothing under the build "
            f"context {context}; sources must be relative to that folder"
        )
    for match in matches:
        if not match.resolve().is_relative_to(context.resolve()):
            raise DockerfileError(
                f"COPY source {source!r} in {dockerfile} is outside the build context "
                f"{context}"
            )
        candidates = [match] if match.is_file() else sorted(match.rglob("*"))
        for path in candidates:
            if not path.is_file():
                continue
            relative = path.relative_to(context)
            if _IGNORED_PARTS.intersection(relative.parts):
                continue
            if path.suffix in _IGNORED_SUFFIXES:
                continue
            yield path


def content_tag(context: Path, dockerfile: Path) -> str:
    """Hash the Dockerfile and every file it copies in, for use as the image tag."""
    digest = hashlib.sha256()
    files: set[Path] = {dockerfile}
    for source in copy_sources(dockerfile):
        files.update(_context_files(context, dockerfile, source))
    for path in sorted(files):
        digest.update(str(path.relative_to(context)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:TAG_LENGTH]


@dataclass(frozen=True)
class ImagesArgs:
    settings: Settings
    repo_root: Path
    services: tuple[names.Service, ...]
    # The kind cluster to load images into (kind stacks only).
    kind_cluster: pulumi.Resource | None = None
    # Registry login for existing stacks; None pushes with the local Docker login.
    registry_password: pulumi.Output[str] | None = None


class Images(pulumi.ComponentResource):
    """One image per service, and on kind the command that loads it into the node."""

    # Service name -> image reference the Deployments use.
    refs: dict[str, pulumi.Output[str]]
    # Service name -> resources that must finish before a Pod can pull the image.
    ready: dict[str, list[pulumi.Resource]]

    def __init__(
        self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("covid-ingest:platform:Images", name, None, opts)
        self.refs = {}
        self.ready = {}
        for service in args.services:
            ref, ready = self._image(service, args)
            self.refs[service.name] = ref
            self.ready[service.name] = ready
        self.register_outputs({"refs": self.refs})

    def _image(
        self, service: names.Service, args: ImagesArgs
    ) -> tuple[pulumi.Output[str], list[pulumi.Resource]]:
        settings = args.settings
        dockerfile = dockerfile_path(args.repo_root, service)
        tag = content_tag(args.repo_root, dockerfile)
        # Relative to the program's working directory (infra/ under `pulumi up`),
        # so the inputs, and the stack state, do not depend on the checkout path.
        build = docker.DockerBuildArgs(
            context=os.path.relpath(args.repo_root),
            dockerfile=os.path.relpath(dockerfile),
            platform=settings.image_platform,
        )

        if settings.cluster_kind is ClusterKind.KIND:
            reference = f"{service.image_name}:{tag}"
            image = docker.Image(
                f"image-{service.name}",
                image_name=reference,
                build=build,
                # kind nodes get the image by `kind load`, not from a registry.
                skip_push=True,
                opts=pulumi.ResourceOptions(parent=self),
            )
            load = local.Command(
                f"kind-load-{service.name}",
                create=(
                    f"kind load docker-image {reference}"
                    f" --name {settings.kind_cluster_name}"
                ),
                triggers=[tag],
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[image, *_present(args.kind_cluster)],
                ),
            )
            return pulumi.Output.from_input(reference), [image, load]

        reference = f"{settings.registry}/{service.image_name}:{tag}"
        registry = None
        if settings.registry_username and args.registry_password is not None:
            registry = docker.RegistryArgs(
                server=settings.registry.split("/", 1)[0],
                username=settings.registry_username,
                password=args.registry_password,
            )
        image = docker.Image(
            f"image-{service.name}",
            image_name=reference,
            build=build,
            registry=registry,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return image.image_name, [image]


def _present(resource: pulumi.Resource | None) -> Iterable[pulumi.Resource]:
    return [resource] if resource is not None else []
