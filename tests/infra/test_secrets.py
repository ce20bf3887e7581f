"""No secret reaches Pulumi inputs, rendered manifests or outputs in plain text.

Every mocked secret (generated passwords, private keys, the kind kubeconfig, the
registry password, an external MongoDB URL) contains MOCK_SECRET, so a plain
string holding it is a leak.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from covid_infra.mocked import MOCK_SECRET, SECRET_MARKER, Recording
from covid_infra.render import render

# Where a secret value may appear at all (always marked secret).
SECRET_HOLDERS = {
    "kubernetes:core/v1:Secret",
    "pulumi:providers:kubernetes",
    "kubernetes:helm.sh/v3:Release",
    "docker:index/image:Image",
    "tls:index/selfSignedCert:SelfSignedCert",
    "tls:index/certRequest:CertRequest",
    "tls:index/locallySignedCert:LocallySignedCert",
}


def _secret_strings(value: Any, marked: bool = False) -> Iterator[tuple[bool, str]]:
    """Yield (marked secret?, text) for every string containing MOCK_SECRET."""
    if isinstance(value, dict):
        if set(value) == {SECRET_MARKER}:
            yield from _secret_strings(value[SECRET_MARKER], True)
            return
        for item in value.values():
            yield from _secret_strings(item, marked)
    elif isinstance(value, list):
        for item in value:
            yield from _secret_strings(item, marked)
    elif isinstance(value, str) and MOCK_SECRET in value:
        yield marked, value


def _check_inputs(recording: Recording) -> int:
    found = 0
    for registration in recording.registrations:
        for marked, _ in _secret_strings(registration.inputs):
            where = f"{registration.type} {registration.name}"
            assert marked, f"secret value in plain text in {where}"
            assert registration.type in SECRET_HOLDERS, f"secret value in {where}"
            found += 1
    return found


def test_secret_inputs_are_marked(recording):
    # Passwords, the issuer key and the anchor key are used at least once each.
    assert _check_inputs(recording) >= 8


def test_external_mongo_url_stays_secret(external_mongo_recording):
    _check_inputs(external_mongo_recording)
    connections = external_mongo_recording.named(
        "kubernetes:core/v1:Secret", "covid-connections"
    )
    (marked, url) = next(
        (marked, text)
        for marked, text in _secret_strings(connections.inputs)
        if text.startswith("mongodb+srv://")
    )
    assert marked
    assert "cluster0.example.net" in url


def test_kind_kubeconfig_is_secret(kind_recording):
    (provider,) = kind_recording.of_type("pulumi:providers:kubernetes")
    assert set(provider.inputs["kubeconfig"]) == {SECRET_MARKER}


def test_outputs_hold_no_secret(recording):
    assert MOCK_SECRET not in repr(recording.outputs)


def test_rendered_manifests_hold_no_secret(recording, tmp_path):
    written = render(recording, tmp_path)
    assert len(written) > 40
    for path in written:
        assert MOCK_SECRET not in path.read_text(), path.name


def test_check_catches_plain_secret(kind_recording):
    leaked = kind_recording.registrations[0].__class__(
        urn="urn:test",
        type="kubernetes:core/v1:ConfigMap",
        name="leak",
        parent="",
        custom=True,
        provider="",
        dependencies=(),
        inputs={"data": {"password": f"x-{MOCK_SECRET}"}},
    )
    probe = Recording("kind", (leaked,), {})
    try:
        _check_inputs(probe)
    except AssertionError as error:
        assert "plain text" in str(error)
    else:
        raise AssertionError("a plain secret in a ConfigMap went unnoticed")
