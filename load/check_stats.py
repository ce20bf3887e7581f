"""Read Locust's --json-file statistics and decide whether a headless run passed.

    python -m load.check_stats build/locust-stats.json [--max-fail-ratio 0.01]

Exit status 0 when the run made at least --min-requests requests and the share
of failed requests is at most --max-fail-ratio, 1 when it did not, 2 when the
file cannot be read. Locust's final CSV misses the last second of a run and its
summary table goes to stderr, so the JSON file is the source used here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


class StatsFileError(ValueError):
    """A statistics file that is missing or not in Locust's JSON format."""


@dataclass(frozen=True)
class Totals:
    """Statistics of all request names of a run taken together; times in ms."""

    requests: int
    failures: int
    fail_ratio: float
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    # Unix seconds of the first request sent and the last request finished.
    start_time: float | None
    end_time: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def load_stats(path: Path) -> list[dict]:
    """Read the list of per-request-name statistics that --json-file writes."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise StatsFileError(
            f"Locust statistics {path}: cannot be read: {error}"
        ) from error
    except ValueError as error:
        raise StatsFileError(
            f"Locust statistics {path}: invalid JSON: {error}"
        ) from error
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise StatsFileError(
            f"Locust statistics {path}: expected a JSON array of objects as written "
            "by locust --json-file"
        )
    return data


def percentile(
    response_times: Mapping[str | int, int], quantile: float
) -> float | None:
    """Return the nearest-rank quantile of Locust's {milliseconds: count} histogram.

    Locust rounds the times it records (to 10 ms above 100 ms, to 100 ms above
    1 s), so the result has that resolution.
    """
    counts = sorted((float(ms), count) for ms, count in response_times.items())
    total = sum(count for _, count in counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(quantile * total))
    seen = 0
    for ms, count in counts:
        seen += count
        if seen >= rank:
            return ms
    return counts[-1][0]


def totals(entries: Sequence[dict]) -> Totals:
    """Add up the statistics of every request name."""
    requests = sum(int(entry.get("num_requests", 0)) for entry in entries)
    failures = sum(int(entry.get("num_failures", 0)) for entry in entries)
    histogram: dict[float, int] = {}
    for entry in entries:
        for ms, count in entry.get("response_times", {}).items():
            histogram[float(ms)] = histogram.get(float(ms), 0) + int(count)
    total_time = sum(float(entry.get("total_response_time", 0)) for entry in entries)
    starts = [e["start_time"] for e in entries if e.get("num_requests")]
    ends = [e["last_request_timestamp"] for e in entries if e.get("num_requests")]
    maxima = [float(e["max_response_time"]) for e in entries if e.get("num_requests")]
    max_ms = max(maxima) if maxima else None

    def capped(value: float | None) -> float | None:
        # A rounded histogram bucket can lie above the exact maximum.
        return None if value is None or max_ms is None else min(value, max_ms)

    return Totals(
        requests=requests,
        failures=failures,
        fail_ratio=failures / requests if requests else 0.0,
        mean_ms=total_time / requests if requests else None,
        p50_ms=capped(percentile(histogram, 0.50)),
        p95_ms=capped(percentile(histogram, 0.95)),
        p99_ms=capped(percentile(histogram, 0.99)),
        max_ms=max_ms,
        start_time=min(starts) if starts else None,
        end_time=max(ends) if ends else None,
    )


def problems(result: Totals, max_fail_ratio: float, min_requests: int) -> list[str]:
    """Return why the run failed, or an empty list when it passed."""
    found = []
    if result.requests < min_requests:
        found.append(
            f"only {result.requests} requests were made, expected at least "
            f"{min_requests}"
        )
    if result.fail_ratio > max_fail_ratio:
        found.append(
            f"{result.failures} of {result.requests} requests failed "
            f"({result.fail_ratio:.2%}), more than the allowed {max_fail_ratio:.2%}"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.check_stats", description=__doc__.splitlines()[0]
    )
    parser.add_argument("stats", type=Path, help="file written by locust --json-file")
    parser.add_argument(
        "--max-fail-ratio",
        type=float,
        default=0.01,
        help="largest share of failed requests that passes (default: %(default)s)",
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        default=1,
        help="minimum number of requests to pass (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        result = totals(load_stats(args.stats))
    except StatsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2))
    found = problems(result, args.max_fail_ratio, args.min_requests)
    for problem in found:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
