"""`python -m local run`: start the stack, load it through nginx with Locust, summarise.

The stack stops at the end in every case: after the summary, on an error, and
on SIGINT (Ctrl-C) or SIGTERM. When a stack already runs from the same state
directory, the runner leaves it alone and raises StackConflict. The exit
status is 0 only when every record the router accepted is in MongoDB and every
path with a non-zero weight got records.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from load.check_stats import StatsFileError, Totals, load_stats, totals
from load.records import TrafficFileError, load_traffic
from local.config import APPS_DIR, REPO_ROOT
from local.health import log_tail
from local.prometheus import SCRAPE_INTERVAL_S
from local.stack import LocalStack
from local.summary import Stores, build_summary, format_summary, read_responses
from local.summary import wait_for_drain as wait_for_stores
from local.supervisor import terminate_with_parent

log = logging.getLogger(__name__)

LOCUSTFILE = REPO_ROOT / "load" / "locustfile.py"
DEFAULT_USERS = 20
DEFAULT_SPAWN_RATE = 10.0
DEFAULT_OUTPUT = REPO_ROOT / "build" / "local-run.json"
DEFAULT_DRAIN_TIMEOUT_S = 30.0
# Seconds Locust gives running requests after the run time before it stops users.
LOCUST_STOP_TIMEOUT_S = 5
# Seconds Locust gets to stop after SIGINT before it is killed, and to exit then.
LOCUST_STOP_WAIT_S = LOCUST_STOP_TIMEOUT_S + 10
LOCUST_KILL_WAIT_S = 5
# Exit status after SIGINT, as shells report a process ended by Ctrl-C.
INTERRUPTED_STATUS = 130


@dataclass(frozen=True)
class RunOptions:
    duration_s: int = 60
    users: int = DEFAULT_USERS
    spawn_rate: float = DEFAULT_SPAWN_RATE
    traffic_file: Path | None = None
    output: Path = DEFAULT_OUTPUT
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    start_timeout_s: float = 120


class Terminated(Exception):
    """SIGTERM arrived; handled like Ctrl-C."""


class RunError(RuntimeError):
    """The load run itself failed, so there is no summary to judge."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


def interrupt_bound_s(stack: LocalStack) -> float:
    """Return the worst-case seconds from SIGINT during the load to the runner's exit.

    It is Locust's stop plus LocalStack.stop: 94 s with the default stop
    waits, while a stop normally takes a few seconds.
    """
    return LOCUST_STOP_WAIT_S + LOCUST_KILL_WAIT_S + stack.stop_bound_s()


def run(stack: LocalStack, options: RunOptions) -> int:
    """Run the load test and return the exit status.

    Raises StackConflict, before anything starts, when another stack uses the
    state directory or a port is in use.
    """
    # A shell starts a background job with SIGINT ignored, and Python keeps an
    # inherited SIG_IGN, so without this `kill -INT` or Ctrl-C after `fg` would
    # not stop the run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if options.traffic_file:
        # Checked before the stack starts, so a bad file costs no start-up.
        try:
            load_traffic(options.traffic_file)
        except TrafficFileError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    locust: subprocess.Popen | None = None
    try:
        try:
            # Tied to this process, so even a SIGKILL of the runner stops the
            # stack. `up` starts a stack that outlives the command instead.
            stack.start(
                reset_data=True,
                timeout_s=options.start_timeout_s,
                die_with_caller=True,
            )
            started = time.time()
            locust = _start_locust(stack, options)
            _wait_for_locust(locust, options, stack.paths.locust_dir / "locust.log")
            summary = _summarize(stack, options, started, finished=time.time())
        finally:
            # A second Ctrl-C must not cut the clean-up short and leave
            # processes behind. interrupt_bound_s bounds the clean-up.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _stop_locust(locust)
            # After a StackConflict the stack that runs is not this run's.
            if stack.launched:
                stack.stop()
    except (KeyboardInterrupt, Terminated):
        log.warning("interrupted: the local stack is stopped, no summary written")
        return INTERRUPTED_STATUS
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous_term)

    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary))
    if "paths_from_prometheus" in summary:
        print(_format_prometheus(summary["paths_from_prometheus"]))
    print(f"Summary written to {options.output}")
    return 0 if summary["passed"] else 1


def _locust_files(stack: LocalStack) -> tuple[Path, Path]:
    """Return the responses file and the statistics file base name of a run."""
    return stack.paths.locust_dir / "responses.jsonl", stack.paths.locust_dir / "stats"


def _start_locust(stack: LocalStack, options: RunOptions) -> subprocess.Popen:
    responses, stats = _locust_files(stack)
    responses.unlink(missing_ok=True)
    stats.with_suffix(".json").unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "locust",
        "--locustfile",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(options.users),
        "--spawn-rate",
        str(options.spawn_rate),
        "--run-time",
        f"{options.duration_s}s",
        "--stop-timeout",
        str(LOCUST_STOP_TIMEOUT_S),
        "--host",
        stack.config.ingress_url,
        # Locust adds ".json" to this name.
        "--json-file",
        str(stats),
        "--only-summary",
        "--responses-file",
        str(responses),
    ]
    if options.traffic_file:
        command += ["--traffic-file", str(options.traffic_file.resolve())]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(APPS_DIR), str(REPO_ROOT)])
    log_path = stack.paths.locust_dir / "locust.log"
    log.info(
        "running Locust: %d users for %d s against %s (log: %s)",
        options.users,
        options.duration_s,
        stack.config.ingress_url,
        log_path,
    )
    with log_path.open("wb") as log_file:
        # Its own session: the runner, not the terminal, decides when it stops.
        # If the runner dies, Locust gets SIGTERM and stops too.
        return subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
            preexec_fn=terminate_with_parent(os.getpid()),
        )


def _wait_for_locust(
    locust: subprocess.Popen, options: RunOptions, log_path: Path
) -> None:
    """Wait for Locust to finish; raise RunError if it timed out or crashed."""
    # Locust stops by itself after the run time; the margin covers its start-up,
    # the stop timeout and writing the statistics.
    limit_s = options.duration_s + LOCUST_STOP_TIMEOUT_S + 60
    try:
        status = locust.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        raise RunError(f"Locust did not stop within {limit_s} s") from None
    # Locust exits with 1 when any request failed; the summary judges that.
    if status not in (0, 1):
        raise RunError(
            f"Locust exited with status {status}; last lines of {log_path}:\n"
            + log_tail(log_path)
        )


def _stop_locust(locust: subprocess.Popen | None) -> None:
    if locust is None or locust.poll() is not None:
        return
    # SIGINT makes Locust stop its users and write its statistics.
    locust.send_signal(signal.SIGINT)
    try:
        locust.wait(timeout=LOCUST_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        log.warning("Locust did not stop within %d s; killing it", LOCUST_STOP_WAIT_S)
        locust.kill()
        # A wait without a timeout would block for good if Ctrl-C interrupted
        # Popen.wait between taking its internal lock and the matching `try`.
        try:
            locust.wait(timeout=LOCUST_KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            log.error("Locust (PID %d) did not exit after SIGKILL", locust.pid)


def _read_locust_totals(stats_base: Path) -> Totals | None:
    try:
        return totals(load_stats(stats_base.with_suffix(".json")))
    except StatsFileError as error:
        log.error("%s", error)
        return None


def _summarize(
    stack: LocalStack, options: RunOptions, started: float, finished: float
) -> dict:
    """Build the run's summary. `started` and `finished` bound Locust's process."""
    responses_path, stats_base = _locust_files(stack)
    responses = read_responses(responses_path)
    config = stack.config
    stores = Stores(config.mongo_url, config.mongo_db, config.redis_url)
    try:
        log.info(
            "waiting up to %.0f s for %d accepted records to be stored",
            options.drain_timeout_s,
            len(responses.accepted_ids),
        )
        state = wait_for_stores(
            stores, set(responses.accepted_ids), options.drain_timeout_s
        )
    finally:
        stores.close()

    locust = _read_locust_totals(stats_base)
    summary = build_summary(
        duration_s=options.duration_s,
        users=options.users,
        route_weights=config.route_weights,
        mongo_db=config.mongo_db,
        responses=responses,
        stores=state,
        locust=locust,
    )
    summary["logs"] = str(stack.paths.logs)
    # Locust's first and last request bound the load, and its own rate. The
    # process's lifetime also covers Locust's start-up and shutdown.
    load_start = started
    load_end = finished
    if locust is not None and locust.start_time and locust.end_time:
        load_start, load_end = locust.start_time, locust.end_time
    comparison = _prometheus_comparison(config.prometheus_url, load_start, load_end)
    if comparison is not None:
        summary["paths_from_prometheus"] = comparison
    return summary


def _comparison_module():
    """Return observability.summary when it exists and offers path_comparison."""
    try:
        module = importlib.import_module("observability.summary")
    except ModuleNotFoundError as error:
        if error.name in ("observability", "observability.summary"):
            return None
        raise
    return module if hasattr(module, "path_comparison") else None


def _prometheus_comparison(
    prometheus_url: str, load_start: float, load_end: float
) -> dict | None:
    module = _comparison_module()
    if module is None:
        return None
    # One more scrape so the final counts of the run are in Prometheus.
    time.sleep(SCRAPE_INTERVAL_S + 1)
    try:
        return module.path_comparison(prometheus_url, load_start, load_end)
    except Exception as error:  # noqa: BLE001 - the report is extra, the run's result stands
        log.warning("could not compare the paths from Prometheus: %s", error)
        return {"error": str(error)}


def _format_prometheus(comparison: dict) -> str:
    module = _comparison_module()
    if "error" in comparison or module is None or not hasattr(module, "format_table"):
        return "Paths from Prometheus: " + json.dumps(comparison)
    return module.format_table(comparison)
