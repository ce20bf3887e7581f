"""`make render`: one YAML file per object, plus the Helm releases and remote files."""

from __future__ import annotations

import yaml
from covid_infra import versions
from covid_infra.render import object_file_name, render


def test_render_writes_every_object(recording, tmp_path):
    written = render(recording, tmp_path)
    objects = recording.kubernetes_objects()
    assert len(written) == len(objects) + 2
    for path in written:
        assert list(yaml.safe_load_all(path.read_text())), path.name

    releases = list(yaml.safe_load_all((tmp_path / "helm-releases.yaml").read_text()))
    assert {(r["chart"], r["version"]) for r in releases} == {
        (chart.chart, chart.version) for chart in versions.HELM_CHARTS
    }
    (remote,) = yaml.safe_load_all((tmp_path / "remote-manifests.yaml").read_text())
    assert remote["file"] == versions.GATEWAY_API_STANDARD_INSTALL_URL


def test_render_replaces_earlier_output(recording, tmp_path):
    stale = tmp_path / "deployment.covid.removed.yaml"
    stale.write_text("kind: Deployment\n")
    render(recording, tmp_path)
    assert not stale.exists()


def test_file_names_are_unique(recording):
    file_names = [
        object_file_name(registration.inputs)
        for registration in recording.kubernetes_objects()
    ]
    assert len(file_names) == len(set(file_names))
