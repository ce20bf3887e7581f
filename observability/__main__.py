"""Write the dashboards and alert rules to files: `python -m observability OUT_DIR`.

The files are what Grafana imports (one JSON model per dashboard) and what
Prometheus loads (`covid-rules.yml`), for use without the Pulumi program.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from observability import dashboards, rules

RULES_FILE_NAME = "covid-rules.yml"


def write_all(out_dir: Path) -> list[Path]:
    """Write every dashboard and the rules file to `out_dir` and return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, model in dashboards.all_dashboards().items():
        path = out_dir / file_name
        path.write_text(json.dumps(model, indent=2) + "\n")
        written.append(path)
    rules_path = out_dir / RULES_FILE_NAME
    rules_path.write_text(rules.rules_yaml())
    written.append(rules_path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m observability",
        description="Write the Grafana dashboards and Prometheus alert rules.",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write the files to")
    args = parser.parse_args()
    for path in write_all(args.out_dir):
        print(path)


if __name__ == "__main__":
    main()
