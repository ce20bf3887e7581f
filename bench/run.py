"""Benchmark the local stack's throughput and cost per record; `make bench` runs it.

    python bench/run.py [--duration 15] [--smoke]

Rows, each a load phase whose records are identified by their receipt time:
1. baseline: a trivial Flask endpoint (bench/trivial_app.py) under the
   services' gunicorn settings, behind an nginx with the ingress's
   configuration, loaded by wrk.
2. For each route weighting (gRPC only, Redis only, the 50/50 default) a stack
   is started fresh and gets: wrk at full speed ("max"), then wrk paced at 80%
   of the stored rate that "max" reached ("80%").
3. On the 50/50 stack also: Locust at full speed, and wrk posting batches of
   100 records to /cases/batch.
Each row reports stored records/s, request latency, end-to-end lag
(stored_at - received_at in MongoDB), lost records (accepted by the router but
not in MongoDB after the drain) and CPU time per record of every process.
The results go to build/bench.json and to the table in docs/benchmarks.md.
--smoke runs the 50/50 stack only, with short rows, and writes neither the
table nor build/bench.json unless asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
for entry in (REPO_ROOT / "apps", REPO_ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from covid_common import names  # noqa: E402

from bench import report  # noqa: E402
from bench.measure import (  # noqa: E402
    CaseStore,
    CpuMeter,
    LoadResult,
    machine_busy_seconds,
    run_locust,
    run_wrk,
    tree_pids,
    utc_now,
)
from local import nginx  # noqa: E402
from local.config import free_port, with_free_ports  # noqa: E402
from local.stack import LocalStack  # noqa: E402

log = logging.getLogger("bench")

DEFAULT_JSON = REPO_ROOT / "build" / "bench.json"
DEFAULT_DOC = REPO_ROOT / "docs" / "benchmarks.md"
WEIGHTINGS = {
    "grpc": "grpc=100,redis=0",
    "redis": "grpc=0,redis=100",
    "split": "grpc=50,redis=50",
}
BATCH_SIZE = 100
PACED_FRACTION = 0.8
DRAIN_TIMEOUT_S = 60.0
WARMUP_S = 2


@dataclass(frozen=True)
class Settings:
    duration_s: float
    threads: int
    connections: int
    locust_users: int
    weightings: tuple[str, ...]
    work_dir: Path


@dataclass
class Row:
    name: str
    weights: str
    generator: str
    generator_settings: str
    load: LoadResult
    stored: int
    stored_per_s: float
    lost: int
    lag_ms: dict
    drain_s: float
    cpu_s: dict[str, float]
    machine_cpu_s: float

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["load"] = {
            key: value for key, value in data["load"].items() if key != "accepted_ids"
        }
        return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__)
    parser.add_argument(
        "--duration", type=float, default=15, help="seconds of load per row"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk connections (and users)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="only the 50/50 stack, for a quick check that nothing is lost",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the stacks' logs and data"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        help=f"Markdown file whose table to regenerate (default {DEFAULT_DOC}, "
        "none with --smoke)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if shutil.which("wrk") is None:
        print("bench: wrk is not installed; run local/bootstrap.sh", file=sys.stderr)
        return 2
    doc = args.doc or (None if args.smoke else DEFAULT_DOC)
    work_dir = Path(tempfile.mkdtemp(prefix="covid-bench-"))
    settings = Settings(
        duration_s=args.duration,
        threads=args.threads,
        connections=args.connections,
        locust_users=args.connections,
        weightings=("split",) if args.smoke else tuple(WEIGHTINGS),
        work_dir=work_dir,
    )
    try:
        results = run_all(settings)
    finally:
        if args.keep:
            print(f"Logs and data kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(report.render_table(results))
    if doc is not None:
        report.update_document(doc, results)
        print(f"Table written to {doc}")
    print(f"Results written to {args.json}")
    lost = sum(row["lost"] for row in results["rows"])
    return 1 if lost else 0


def run_all(settings: Settings) -> dict:
    started = time.time()
    rows = [run_baseline(settings)]
    for weighting in settings.weightings:
        rows += run_stack_rows(settings, weighting)
    return {
        "machine": report.machine(),
        "versions": report.versions(),
        "settings": {
            "duration_s": settings.duration_s,
            "wrk": f"-t{settings.threads} -c{settings.connections}",
            "locust_users": settings.locust_users,
            "batch_size": BATCH_SIZE,
            "paced_fraction": PACED_FRACTION,
        },
        "elapsed_s": round(time.time() - started, 1),
        "rows": [row.to_dict() for row in rows],
    }


def run_baseline(settings: Settings) -> Row:
    """Load the trivial endpoint behind its own nginx, set up like the ingress."""
    state = settings.work_dir / "baseline"
    (state / "nginx" / "tmp").mkdir(parents=True)
    (state / "logs").mkdir()
    app_port, ingress_port = free_port(), free_port()
    (state / "nginx" / "nginx.conf").write_text(
        nginx.render(listen_port=ingress_port, router_port=app_port, state_dir=state)
    )
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "apps"), str(REPO_ROOT)]),
            names.Env.HTTP_PORT: str(app_port),
        }
    )
    env.pop(names.Env.PROMETHEUS_MULTIPROC_DIR, None)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with open(state / "logs" / "trivial.log", "wb") as app_log:
        app = subprocess.Popen(
            [
                str(gunicorn),
                "--config",
                "python:covid_common.gunicorn_conf",
                "bench.trivial_app:app",
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=app_log,
            stderr=subprocess.STDOUT,
        )
    proxy = subprocess.Popen(
        [
            shutil.which("nginx") or "/usr/sbin/nginx",
            "-p",
            str(state / "nginx"),
            "-c",
            str(state / "nginx" / "nginx.conf"),
            "-e",
            str(state / "logs" / "nginx-error.log"),
        ]
    )
    try:
        url = f"http://127.0.0.1:{ingress_port}"
        _wait_http(url + nginx.STATUS_ROUTE)
        _wait_port(app_port)
        run_wrk(
            url,
            state / "warmup",
            "warmup",
            WARMUP_S,
            settings.threads,
            settings.connections,
        )
        meter = CpuMeter({"nginx": tree_pids(proxy.pid), "app": tree_pids(app.pid)})
        busy = machine_busy_seconds()
        load = run_wrk(
            url,
            state / "wrk",
            "baseline",
            settings.duration_s,
            settings.threads,
            settings.connections,
        )
        cpu = meter.seconds()
        cpu["load generator"] = load.cpu_s
    finally:
        for process in (proxy, app):
            process.terminate()
            process.wait(timeout=30)
    return Row(
        name="baseline",
        weights="-",
        generator="wrk",
        generator_settings=f"-t{settings.threads} -c{settings.connections}",
        load=load,
        stored=load.accepted,
        stored_per_s=load.accepted / load.duration_s,
        lost=0,
        lag_ms={},
        drain_s=0.0,
        cpu_s=cpu,
        machine_cpu_s=machine_busy_seconds() - busy,
    )


def run_stack_rows(settings: Settings, weighting: str) -> list[Row]:
    state = settings.work_dir / f"stack-{weighting}"
    config = with_free_ports(state, route_weights=WEIGHTINGS[weighting])
    stack = LocalStack(config)
    log.info("starting the stack with ROUTE_WEIGHTS=%s", config.route_weights)
    stack.start(reset_data=True)
    store = CaseStore(config.mongo_url, config.mongo_db)
    rows = []
    try:
        runner = StackRunner(settings, stack, store, weighting)
        runner.warm_up()
        best = runner.wrk_row("max")
        rows.append(best)
        rows.append(runner.wrk_row("80%", rate=PACED_FRACTION * best.stored_per_s))
        if weighting == "split":
            rows.append(runner.locust_row())
            rows.append(runner.wrk_row(f"batch {BATCH_SIZE}", batch=True))
    finally:
        store.close()
        stack.stop()
    return rows


class StackRunner:
    """Runs rows against one started stack and measures each."""

    def __init__(
        self, settings: Settings, stack: LocalStack, store: CaseStore, weighting: str
    ):
        self.settings = settings
        self.stack = stack
        self.store = store
        self.weighting = weighting
        self.url = stack.config.ingress_url
        self.dir = settings.work_dir / f"rows-{weighting}"

    def warm_up(self) -> None:
        since = utc_now()
        load = run_wrk(
            self.url,
            self.dir / "warmup",
            "warmup",
            WARMUP_S,
            self.settings.threads,
            self.settings.connections,
        )
        self.store.wait_for(since, load.accepted_ids, DRAIN_TIMEOUT_S)

    def wrk_row(self, name: str, rate: float | None = None, batch: bool = False) -> Row:
        # Fewer connections for batches keep the records in flight near what
        # the single-record rows have: 32 connections of 100 records each
        # would queue for seconds behind the storage.
        connections = (
            max(2, self.settings.connections // 4)
            if batch
            else self.settings.connections
        )
        settings = f"-t{self.settings.threads} -c{connections}"
        if rate:
            settings += f", paced at {rate:.0f} req/s"
        if batch:
            settings += f", {BATCH_SIZE} records per request"
        prefix = f"{self.weighting}-{name.replace(' ', '').replace('%', 'p')}"
        return self._measure(
            name,
            "wrk",
            settings,
            lambda: run_wrk(
                self.url,
                self.dir / prefix,
                prefix,
                self.settings.duration_s,
                self.settings.threads,
                connections,
                mode="batch" if batch else "single",
                batch_size=BATCH_SIZE,
                rate=rate,
            ),
        )

    def locust_row(self) -> Row:
        users = self.settings.locust_users
        return self._measure(
            "max",
            "Locust",
            f"{users} users, no wait",
            lambda: run_locust(
                self.url, self.dir / "locust", self.settings.duration_s, users
            ),
        )

    def _measure(self, name: str, generator: str, settings: str, load_fn) -> Row:
        log.info("row %s/%s with %s (%s)", self.weighting, name, generator, settings)
        meter = CpuMeter(self._process_groups())
        busy = machine_busy_seconds()
        since = utc_now()
        load: LoadResult = load_fn()
        drain_s = self.store.wait_for(since, load.accepted_ids, DRAIN_TIMEOUT_S)
        cpu = meter.seconds()
        cpu["load generator"] = load.cpu_s
        machine_cpu = machine_busy_seconds() - busy
        stored = self.store.read_since(since)
        lost = len(load.accepted_ids - stored.ids)
        window = (stored.last_stored - stored.first_received).total_seconds()
        return Row(
            name=name,
            weights=self.stack.config.route_weights,
            generator=generator,
            generator_settings=settings,
            load=load,
            stored=stored.count,
            stored_per_s=stored.count / max(window, load.duration_s, 1e-9),
            lost=lost,
            lag_ms=dict(stored.lag_ms),
            drain_s=round(drain_s, 2),
            cpu_s=cpu,
            machine_cpu_s=machine_cpu,
        )

    def _process_groups(self) -> dict[str, list[int]]:
        groups = {}
        for state in self.stack.supervisor.states().values():
            if state.pid:
                groups[state.name] = tree_pids(state.pid)
        return groups


def _wait_http(url: str, timeout_s: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not respond within {timeout_s} s")


def _wait_port(port: int, timeout_s: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on port {port} within {timeout_s} s")


if __name__ == "__main__":
    sys.exit(main())
