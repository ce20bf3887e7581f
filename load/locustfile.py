"""Locust user that posts COVID-19 case records through the ingress to the router.

A headless run always needs a run time, and the statistics decide pass or fail:

    locust -f load/locustfile.py --headless --users 20 --spawn-rate 10 \\
        --run-time 60s --host http://127.0.0.1:8000 --json-file build/locust-stats
    python -m load.check_stats build/locust-stats.json

Options (each also settable by the environment variable in brackets):
  --traffic-file (TRAFFIC_FILE): replay this JSON array of records in a loop,
      shared by all users in order, instead of random records.
  --responses-file (RESPONSES_FILE): append one JSON line per response with
      the status, record_id and path, so a run can be checked against the stores.
  --wait (LOAD_WAIT_S): seconds each user waits between requests, "MIN,MAX".
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
from pathlib import Path

from locust import FastHttpUser, between, events, task

try:
    from load.records import TrafficFileError, load_traffic, random_record
except ModuleNotFoundError:
    # Started without the repository root on PYTHONPATH: Locust puts the
    # locustfile's own directory on sys.path instead.
    from records import TrafficFileError, load_traffic, random_record

CASES_ROUTE = "/cases"
ACCEPTED_STATUSES = (200, 201)
DEFAULT_WAIT = "0.05,0.2"

_traffic: list[dict] | None = None
# One position shared by all users, so a traffic file replays in its order.
_traffic_position = itertools.count()
_responses_file = None


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    parser.add_argument(
        "--traffic-file",
        default=os.environ.get("TRAFFIC_FILE", ""),
        help="JSON array of records to replay in a loop instead of random records",
    )
    parser.add_argument(
        "--responses-file",
        default=os.environ.get("RESPONSES_FILE", ""),
        help="file that gets one JSON line per response (status, record_id, path)",
    )
    parser.add_argument(
        "--wait",
        default=os.environ.get("LOAD_WAIT_S", DEFAULT_WAIT),
        help="seconds each user waits between requests, as MIN,MAX "
        f"(default {DEFAULT_WAIT})",
    )


# Exit status for invalid options. Locust itself exits with 1 when requests
# failed, so a different status lets callers tell the two apart.
USAGE_ERROR_STATUS = 2


def _exit_with_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR_STATUS)


def _parse_wait(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        low, high = -1.0, -1.0
    if not 0 <= low <= high:
        _exit_with_error(
            f"--wait (LOAD_WAIT_S): invalid value {text!r}: expected MIN,MAX "
            "seconds with 0 <= MIN <= MAX"
        )
    return low, high


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    global _traffic, _responses_file
    options = environment.parsed_options
    if options is None:
        return
    if options.traffic_file:
        try:
            _traffic = load_traffic(Path(options.traffic_file))
        except TrafficFileError as error:
            _exit_with_error(str(error))
    if options.responses_file:
        path = Path(options.responses_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Line buffering makes each line one write, so lines never interleave.
        _responses_file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    CaseReporter.wait_time = between(*_parse_wait(options.wait))


@events.quitting.add_listener
def _on_quitting(**_kwargs) -> None:
    if _responses_file is not None:
        _responses_file.close()


def _next_record(rng: random.Random) -> dict:
    if _traffic is not None:
        return dict(_traffic[next(_traffic_position) % len(_traffic)])
    return random_record(rng)


class CaseReporter(FastHttpUser):
    """A health worker's system reporting one case after another."""

    wait_time = between(*(float(part) for part in DEFAULT_WAIT.split(",")))

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def report_case(self) -> None:
        record = _next_record(self.rng)
        with self.client.post(
            CASES_ROUTE, json=record, catch_response=True, name=CASES_ROUTE
        ) as response:
            status = response.status_code or 0
            try:
                body = response.json() if response.text else {}
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            if status in ACCEPTED_STATUSES and body.get("record_id"):
                response.success()
            elif status in ACCEPTED_STATUSES:
                response.failure(f"HTTP {status} without a record_id in the body")
            else:
                problem = body.get("error") or response.error or "no JSON error"
                response.failure(f"HTTP {status}: {problem}")
        if _responses_file is not None:
            line = {
                "status": status,
                "record_id": body.get("record_id"),
                "path": body.get("path"),
                "duplicate": bool(body.get("duplicate")),
            }
            _responses_file.write(json.dumps(line) + "\n")
