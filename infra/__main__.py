"""Pulumi program of the COVID-19 case-ingestion system: compose and export."""

import sys
from pathlib import Path

# Pulumi runs this file from infra/. The services' shared names (apps/) and the
# dashboards and alert rules (observability/, at the repository root) are
# imported from the same checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent
for path in (REPO_ROOT / "apps", REPO_ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import pulumi  # noqa: E402
from covid_infra.credentials import load_credentials  # noqa: E402
from covid_infra.program import build  # noqa: E402
from covid_infra.settings import load_settings  # noqa: E402

outputs = build(load_settings(), load_credentials(), REPO_ROOT)

pulumi.export("ingressUrl", outputs.ingress_url)
pulumi.export("liveUrl", f"{outputs.ingress_url}/live/")
pulumi.export("grafanaUrl", outputs.grafana_url)
pulumi.export("imageRefs", outputs.image_refs)
