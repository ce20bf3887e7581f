"""Run the Pulumi program against mocks: no cluster, no Pulumi CLI, no Docker.

`record_stack` builds the whole program for one stack (its real Pulumi.<stack>.yaml
settings, plus test secrets) in a child process, and returns every resource
registration with its inputs, parent, provider and dependencies. The infra tests
inspect that recording, and `python -m covid_infra.render` writes its Kubernetes
objects as YAML. Each stack runs in its own process because the Pulumi runtime
keeps one root stack per process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# The value every mocked secret (passwords, private keys, kubeconfig) contains, so
# a test can search recorded inputs for it.
MOCK_SECRET = "mock-secret-4f1d2c"
SECRET_MARKER = "__pulumi_secret__"
# Secrets a real stack sets with `pulumi config set --secret`; the stack files
# hold none.
TEST_SECRETS = {
    "covid:registryPassword": f"registry-{MOCK_SECRET}",
}
STACKS = ("kind", "existing")


@dataclass(frozen=True)
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    dependencies: tuple[str, ...]
    # Inputs as registered; a secret value is {SECRET_MARKER: value}.
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recording:
    stack: str
    registrations: tuple[Registration, ...]
    outputs: dict[str, Any]

    def by_urn(self) -> dict[str, Registration]:
        return {registration.urn: registration for registration in self.registrations}

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_token]

    def named(self, type_token: str, name: str) -> Registration:
        matches = [r for r in self.of_type(type_token) if r.name == name]
        if len(matches) != 1:
            raise LookupError(
                f"{len(matches)} resources of type {type_token} named {name}"
            )
        return matches[0]

    def kubernetes_objects(self) -> list[Registration]:
        """Custom resources of the kubernetes provider that declare one object each."""
        return [
            r
            for r in self.registrations
            if r.custom
            and r.type.startswith("kubernetes:")
            and "apiVersion" in r.inputs
            and "kind" in r.inputs
        ]

    def all_dependencies(self, urn: str) -> set[str]:
        """URNs `urn` waits for, directly or through the resources it waits for."""
        index = self.by_urn()
        seen: set[str] = set()
        pending = list(index[urn].dependencies)
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in index:
                pending.extend(index[current].dependencies)
        return seen

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Recording:
        data = json.loads(text)
        registrations = tuple(
            Registration(**{**item, "dependencies": tuple(item["dependencies"])})
            for item in data["registrations"]
        )
        return cls(data["stack"], registrations, data["outputs"])


def stack_config(stack: str) -> dict[str, str]:
    """Read Pulumi.<stack>.yaml's config in the form the runtime stores it."""
    path = REPO_ROOT / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    config = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            raise ValueError(
                f"{path} contains an encrypted value for {key}, which the mocks cannot "
                "decrypt; pass test secrets with --secret instead"
            )
        config[key] = value if isinstance(value, str) else json.dumps(value)
    return config


def _plain(value: Any) -> Any:
    """Turn deserialized RPC values into JSON data, keeping secrets marked."""
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        return {SECRET_MARKER: _plain(rpc.unwrap_rpc_secret(value))}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        # The RPC layer carries every number as a double; Kubernetes wants integers.
        return int(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    # Assets, archives and resource references: their text form is enough here.
    return repr(value)


def _fake_pem(kind: str) -> str:
    return f"-----BEGIN {kind}-----\n{MOCK_SECRET}\n-----END {kind}-----\n"


def _run_in_process(
    stack: str, extra_config: dict[str, str], secret_keys: list[str]
) -> Recording:
    import pulumi
    from pulumi.runtime import mocks, rpc

    registrations: list[Registration] = []
    # (type, name) -> outputs that the resource's SDK requests be kept secret.
    # The mock monitor ignores that request, so the mocks apply it themselves,
    # as the engine would.
    secret_outputs: dict[tuple[str, str], list[str]] = {}

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            inputs = {key: value for key, value in args.inputs.items()}
            outputs = dict(inputs)
            if args.typ == "tls:index/privateKey:PrivateKey":
                outputs["privateKeyPem"] = _fake_pem("EC PRIVATE KEY")
                outputs["publicKeyPem"] = _fake_pem("PUBLIC KEY")
            elif args.typ in (
                "tls:index/selfSignedCert:SelfSignedCert",
                "tls:index/locallySignedCert:LocallySignedCert",
            ):
                outputs["certPem"] = f"-----BEGIN CERTIFICATE-----\n{args.name}\n"
            elif args.typ == "tls:index/certRequest:CertRequest":
                outputs["certRequestPem"] = "-----BEGIN CERTIFICATE REQUEST-----\n"
            elif args.typ == "random:index/randomPassword:RandomPassword":
                outputs["result"] = f"{args.name}-{MOCK_SECRET}"
            elif args.typ == "command:local:Command":
                outputs["stdout"] = f"apiVersion: v1\nkind: Config\n# {MOCK_SECRET}\n"
            elif args.typ == "docker:index/image:Image":
                outputs["repoDigest"] = f"{inputs.get('imageName')}@sha256:{'0' * 64}"
            for key in secret_outputs.get((args.typ, args.name), []):
                if key in outputs and not rpc.is_rpc_secret(outputs[key]):
                    outputs[key] = {
                        rpc._special_sig_key: rpc._special_secret_sig,
                        "value": outputs[key],
                    }
            return f"{args.name}-id", outputs

        def call(self, args: pulumi.runtime.MockCallArgs):
            return {}

    class RecordingMonitor(mocks.MockMonitor):
        def RegisterResource(self, request):
            secret_outputs[(request.type, request.name)] = list(
                request.additionalSecretOutputs
            )
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                registrations.append(
                    Registration(
                        urn=response.urn,
                        type=request.type,
                        name=request.name,
                        parent=request.parent,
                        custom=request.custom,
                        provider=request.provider,
                        dependencies=tuple(request.dependencies),
                        inputs=_plain(rpc.deserialize_properties(request.object)),
                    )
                )
            return response

    config = {**stack_config(stack), **extra_config}
    pulumi.runtime.set_all_config(config, secret_keys=secret_keys)
    mock_impl = Mocks()
    pulumi.runtime.set_mocks(
        mock_impl,
        project="covid-ingest",
        stack=stack,
        preview=False,
        monitor=RecordingMonitor(mock_impl),
    )

    for path in (REPO_ROOT / "apps", REPO_ROOT):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from covid_infra.credentials import load_credentials
    from covid_infra.program import build
    from covid_infra.settings import load_settings

    captured: dict[str, Any] = {}

    @pulumi.runtime.test
    def program():
        outputs = build(load_settings(), load_credentials(), REPO_ROOT)
        captured["ingress_url"] = outputs.ingress_url
        captured["grafana_url"] = outputs.grafana_url

        def keep_refs(refs):
            captured["image_refs"] = refs

        return pulumi.Output.all(**outputs.image_refs).apply(keep_refs)

    program()
    return Recording(stack, tuple(registrations), captured)


def record_stack(
    stack: str,
    extra_config: dict[str, str] | None = None,
    extra_secrets: dict[str, str] | None = None,
) -> Recording:
    """Build the program for `stack` under mocks in a child process."""
    command = [sys.executable, "-m", "covid_infra.mocked", "--stack", stack]
    for key, value in (extra_config or {}).items():
        command += ["--config", f"{key}={value}"]
    for key, value in (extra_secrets or {}).items():
        command += ["--secret", f"{key}={value}"]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "apps"), str(REPO_ROOT / "infra"), str(REPO_ROOT)]
        + ([environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else [])
    )
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO_ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"the program failed under mocks for stack {stack}:\n"
            f"{result.stderr[-6000:]}"
        )
    return Recording.from_json(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=STACKS, required=True)
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra stack config, e.g. covid:replicas=3",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra secret stack config, e.g. covid:mongoUrl=mongodb://host/db",
    )
    options = parser.parse_args()
    extra = dict(TEST_SECRETS)
    secret_keys = list(TEST_SECRETS)
    for item in options.config + options.secret:
        key, _, value = item.partition("=")
        extra[key] = value
        if item in options.secret:
            secret_keys.append(key)
    recording = _run_in_process(options.stack, extra, secret_keys)
    sys.stdout.write(recording.to_json())


if __name__ == "__main__":
    main()
