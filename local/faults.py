"""`python -m local.faults`: load the local stack while injecting faults, then count.

For each Redis mode (pubsub, streams) the runner starts one local stack on free
ports, with ROUTE_WEIGHTS 50/50, and goes through the faults one at a time:

- redis-sub-kill: SIGKILL of redis-sub; supervisord starts it again.
- redis-restart: redis-server stops (SIGTERM), stays down, then starts again.
- mongo-pause: SecantusDB is frozen with SIGSTOP, then resumed with SIGCONT.
- grpc-server-kill: SIGKILL of grpc-server; supervisord starts it again.

During each fault a bounded load loop posts records at a steady rate through
nginx. Every record carries its own record_id, so a record is found in MongoDB
whatever response its request got. After the load stops the runner waits for the
stores to drain, then reports per path: requests sent, accepted (200/201),
rejected (4xx), failed (5xx or no answer), stored, lost (accepted but not in
MongoDB), documents beyond the first per record_id, Redis TOTAL minus the
MongoDB document count, and the seconds from the fault until requests on that
path succeed again. The table goes to the screen and the numbers to
build/faults.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
import xmlrpc.client
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pymongo
import redis
import urllib3
from covid_common import names
from supervisor.xmlrpc import SupervisorTransport

from load.records import random_record
from local.config import REPO_ROOT, with_free_ports
from local.health import StackError, check
from local.stack import LocalStack

log = logging.getLogger("local.faults")

MODES = ("pubsub", "streams")
DEFAULT_OUTPUT = REPO_ROOT / "build" / "faults.json"
ACCEPTED = (200, 201)
# The router's downstream errors name the path: "The grpc path ...".
_PATH_IN_MESSAGE = re.compile(r"\bThe (grpc|redis) path\b")
# Seconds a client waits for the ingress. It is longer than the router's downstream
# timeout, so a slow path shows up as the router's 504, not as a client timeout.
REQUEST_TIMEOUT_S = 15.0
# Streams mode claims entries of a killed consumer after this many seconds
# instead of the default 30, so a short run can wait for the claim.
FAULT_CLAIM_IDLE_S = 3.0


@dataclass(frozen=True)
class Timing:
    """Seconds of load before a fault and after its recovery action, and the drain."""

    before_s: float = 4.0
    after_s: float = 8.0
    # How long each fault keeps its process down or frozen, where it chooses.
    outage_s: float = 4.0
    drain_s: float = 30.0
    rate: float = 30.0  # requests per second
    workers: int = 24  # requests in flight at most


@dataclass(frozen=True)
class Outcome:
    record_id: str
    sent_at: float  # unix seconds
    done_at: float
    status: int  # 0 when no HTTP response arrived
    path: str  # "grpc", "redis", or "unknown" when the response names none


class LoadLoop:
    """Posts random records at a steady rate from a pool of threads.

    A request waits for a free worker, so a stalled stack slows the loop down
    instead of piling up requests.
    """

    def __init__(self, ingress_url: str, prefix: str, timing: Timing, seed: int):
        self._url = ingress_url + names.CASES_ROUTE
        self._prefix = prefix
        self._timing = timing
        self._rng = random.Random(seed)
        self._http = urllib3.PoolManager(
            maxsize=timing.workers,
            retries=False,
            timeout=urllib3.Timeout(total=REQUEST_TIMEOUT_S),
        )
        self._slots = threading.Semaphore(timing.workers)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._pool = ThreadPoolExecutor(timing.workers, thread_name_prefix="post")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Outcome]:
        """Stop sending, wait for the requests in flight and return every outcome."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        self._http.clear()
        return list(self.outcomes)

    def _run(self) -> None:
        interval = 1.0 / self._timing.rate
        next_send = time.monotonic()
        sequence = 0
        while not self._stop.is_set():
            pause = next_send - time.monotonic()
            if pause > 0 and self._stop.wait(pause):
                return
            next_send = max(next_send + interval, time.monotonic() - interval)
            self._slots.acquire()
            case = random_record(self._rng)
            case["record_id"] = f"{self._prefix}-{sequence}"
            sequence += 1
            self._pool.submit(self._post, case)

    def _post(self, case: dict) -> None:
        sent_at = time.time()
        status, path = 0, "unknown"
        try:
            response = self._http.request(
                "POST",
                self._url,
                body=json.dumps(case).encode(),
                headers={"Content-Type": "application/json"},
            )
            status = response.status
            path = _answer_path(response.data)
        except urllib3.exceptions.HTTPError as error:
            log.debug(
                "request %s failed without a response: %r", case["record_id"], error
            )
        finally:
            self._slots.release()
        outcome = Outcome(case["record_id"], sent_at, time.time(), status, path)
        with self._lock:
            self.outcomes.append(outcome)


def _answer_path(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return "unknown"
    if not isinstance(body, dict):
        return "unknown"
    if body.get("path") in names.PATHS:
        return body["path"]
    match = _PATH_IN_MESSAGE.search(str(body.get("message", "")))
    return match.group(1) if match else "unknown"


class Control:
    """Starts, stops and signals the programs of one stack through supervisord."""

    def __init__(self, stack: LocalStack):
        self.stack = stack
        transport = SupervisorTransport(
            None, None, f"unix://{stack.paths.supervisor_socket}"
        )
        self._rpc = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def pid(self, program: str) -> int:
        state = self.stack.supervisor.states()[program]
        if state.state != "RUNNING" or not state.pid:
            raise StackError(f"{program} is not running (state {state.state})")
        return state.pid

    def signal(self, program: str, signum: signal.Signals) -> None:
        pid = self.pid(program)
        log.info("sending %s to %s (PID %d)", signum.name, program, pid)
        os.kill(pid, signum)

    def stop(self, program: str) -> None:
        log.info("stopping %s", program)
        self._rpc.supervisor.stopProcess(program, True)

    def start(self, program: str) -> None:
        log.info("starting %s", program)
        self._rpc.supervisor.startProcess(program, True)

    def wait_healthy(self, programs: Iterable[str], timeout_s: float = 60) -> None:
        """Wait until each program runs under supervisord and passes its check."""
        checked = {p.name: p for p in self.stack.programs if p.name in set(programs)}
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.stack.supervisor.states()
            waiting = [
                name
                for name, program in checked.items()
                if states[name].state != "RUNNING" or check(program.health)
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise StackError(f"not healthy after {timeout_s:.0f} s: {waiting}")
            time.sleep(0.2)


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    # Programs that must be healthy again before the load continues.
    programs: tuple[str, ...]
    inject: Callable[[Control, Timing], None]


def _kill(program: str) -> Callable[[Control, Timing], None]:
    def inject(control: Control, _timing: Timing) -> None:
        # supervisord starts the program again at once (autorestart=true).
        control.signal(program, signal.SIGKILL)

    return inject


def _restart_redis(control: Control, timing: Timing) -> None:
    control.stop("redis")
    time.sleep(timing.outage_s)
    control.start("redis")


def _pause_mongo(control: Control, timing: Timing) -> None:
    control.signal("secantus", signal.SIGSTOP)
    try:
        time.sleep(timing.outage_s)
    finally:
        control.signal("secantus", signal.SIGCONT)


FAULTS = (
    Fault(
        "redis-sub-kill",
        "SIGKILL of redis-sub; supervisord starts it again",
        (names.REDIS_SUB.name,),
        _kill(names.REDIS_SUB.name),
    ),
    Fault(
        "redis-restart",
        "redis-server stopped with SIGTERM for outage_s, then started",
        ("redis", names.REDIS_SUB.name, names.REDIS_PUB.name),
        _restart_redis,
    ),
    Fault(
        "mongo-pause",
        "SecantusDB frozen with SIGSTOP for outage_s, then SIGCONT",
        ("secantus", names.GRPC_SERVER.name, names.REDIS_SUB.name),
        _pause_mongo,
    ),
    Fault(
        "grpc-server-kill",
        "SIGKILL of grpc-server; supervisord starts it again",
        (names.GRPC_SERVER.name,),
        _kill(names.GRPC_SERVER.name),
    ),
)
FAULT_NAMES = tuple(fault.name for fault in FAULTS)


@dataclass
class PathResult:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    stored: int = 0
    lost: int = 0
    # Requests that failed although their record was stored; a client resending
    # the same record_id gets a duplicate response, never a second document.
    stored_after_failure: int = 0
    # Seconds from the fault until requests on this path succeed again; None
    # when no request on the path succeeded after its last failure.
    recover_s: float | None = 0.0
    lost_ids: list[str] = field(default_factory=list)


def _recovery(outcomes: Sequence[Outcome], fault_at: float) -> float | None:
    """Return seconds from the fault to the first success after the last failure."""
    after = sorted(
        (o for o in outcomes if o.sent_at >= fault_at or o.done_at >= fault_at),
        key=lambda o: o.done_at,
    )
    failures = [o for o in after if o.status not in ACCEPTED]
    if not failures:
        return 0.0
    last_failure = failures[-1].done_at
    successes = [o for o in after if o.status in ACCEPTED and o.done_at > last_failure]
    if not successes:
        return None
    return round(successes[0].done_at - fault_at, 2)


class Stores:
    """Reads the stack's MongoDB collection and Redis TOTAL."""

    def __init__(self, stack: LocalStack):
        config = stack.config
        self._mongo = pymongo.MongoClient(
            config.mongo_url, serverSelectionTimeoutMS=5000
        )
        self._cases = self._mongo[config.mongo_db][names.MONGO_CASES_COLLECTION]
        self._redis = redis.Redis.from_url(config.redis_url, decode_responses=True)

    def close(self) -> None:
        self._mongo.close()
        self._redis.close()

    def stored_ids(self, record_ids: Sequence[str]) -> Counter[str]:
        """Return record_id -> number of documents, for the given ids found."""
        found: Counter[str] = Counter()
        for start in range(0, len(record_ids), 500):
            chunk = list(record_ids[start : start + 500])
            cursor = self._cases.find(
                {"record_id": {"$in": chunk}}, {"record_id": 1, "_id": 0}
            )
            found.update(document["record_id"] for document in cursor)
        return found

    def counts(self) -> tuple[int, int, int]:
        """Return (documents, distinct record_ids, Redis TOTAL)."""
        ids = Counter(
            document["record_id"]
            for document in self._cases.find({}, {"record_id": 1, "_id": 0})
        )
        total = int(self._redis.get(names.RedisKeys.TOTAL) or 0)
        return sum(ids.values()), len(ids), total

    def wait_for(self, record_ids: Sequence[str], timeout_s: float) -> Counter[str]:
        """Wait until every id is stored or `timeout_s` passes; return what is found."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.stored_ids(record_ids)
            if len(found) == len(set(record_ids)) or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


def run_fault(
    control: Control, stores: Stores, fault: Fault, mode: str, timing: Timing
) -> dict:
    """Load the stack through one fault and return its report."""
    control.wait_healthy(p.name for p in control.stack.programs)
    load = LoadLoop(
        control.stack.config.ingress_url,
        f"{mode}-{fault.name}-{int(time.time())}",
        timing,
        seed=zlib.crc32(f"{mode}-{fault.name}".encode()),
    )
    log.info("%s mode: %s (%s)", mode, fault.name, fault.description)
    load.start()
    time.sleep(timing.before_s)
    fault_at = time.time()
    fault.inject(control, timing)
    control.wait_healthy(fault.programs)
    healthy_after_s = round(time.time() - fault_at, 2)
    time.sleep(timing.after_s)
    outcomes = load.stop()

    accepted = [o.record_id for o in outcomes if o.status in ACCEPTED]
    log.info("waiting up to %.0f s for %d records", timing.drain_s, len(accepted))
    drain_end = time.monotonic() + timing.drain_s
    stores.wait_for(accepted, timing.drain_s)
    found = stores.stored_ids([o.record_id for o in outcomes])
    # Views of stores that failed after their insert are counted a moment
    # later (see covid_common.storage), so wait for Redis to agree as well.
    documents, distinct, redis_total = stores.counts()
    while redis_total != documents and time.monotonic() < drain_end:
        time.sleep(0.5)
        documents, distinct, redis_total = stores.counts()

    paths: dict[str, PathResult] = {}
    for path in (*names.PATHS, "unknown"):
        mine = [o for o in outcomes if o.path == path]
        if not mine and path == "unknown":
            continue
        result = PathResult(sent=len(mine))
        for outcome in mine:
            if outcome.status in ACCEPTED:
                result.accepted += 1
                if outcome.record_id in found:
                    result.stored += 1
                else:
                    result.lost_ids.append(outcome.record_id)
            elif 400 <= outcome.status < 500:
                result.rejected += 1
            else:
                result.failed += 1
                if outcome.record_id in found:
                    result.stored_after_failure += 1
        result.lost = len(result.lost_ids)
        result.recover_s = _recovery(mine, fault_at)
        paths[path] = result

    return {
        "mode": mode,
        "fault": fault.name,
        "description": fault.description,
        "healthy_after_s": healthy_after_s,
        "duplicated_documents": sum(count - 1 for count in found.values()),
        # Over the whole run of this mode so far: both are 0 when every stored
        # document was counted once in the Redis views.
        "all_duplicated_documents": documents - distinct,
        "redis_total_minus_mongo": redis_total - documents,
        "paths": {path: dataclasses.asdict(result) for path, result in paths.items()},
    }


def run_mode(
    mode: str, faults: Sequence[Fault], timing: Timing, state_root: Path
) -> list[dict]:
    """Start a stack in one Redis mode, run each fault through it, stop it."""
    # Each run starts from an empty state directory; the last run's logs stay
    # there for reading.
    state_dir = state_root / mode
    shutil.rmtree(state_dir, ignore_errors=True)
    config = with_free_ports(state_dir)
    config = dataclasses.replace(
        config,
        service_env={
            **config.service_env,
            names.Env.REDIS_MODE: mode,
            names.Env.STREAM_CLAIM_IDLE_S: str(FAULT_CLAIM_IDLE_S),
        },
    )
    stack = LocalStack(config)
    log.info("starting a %s-mode stack in %s", mode, state_dir)
    stack.start(reset_data=True)
    stores = Stores(stack)
    reports = []
    try:
        control = Control(stack)
        for fault in faults:
            reports.append(run_fault(control, stores, fault, mode, timing))
    finally:
        stores.close()
        stack.stop()
    return reports


def format_table(reports: Sequence[dict]) -> str:
    """Render one line per mode, fault and path."""
    header = (
        "mode", "fault", "path", "sent", "accepted", "rejected", "failed",
        "stored", "lost", "dup docs", "redis-mongo", "recover s",
    )  # fmt: skip
    rows = [header]
    for report in reports:
        for path, result in report["paths"].items():
            recover = result["recover_s"]
            rows.append(
                (
                    report["mode"],
                    report["fault"],
                    path,
                    str(result["sent"]),
                    str(result["accepted"]),
                    str(result["rejected"]),
                    str(result["failed"]),
                    str(result["stored"]),
                    str(result["lost"]),
                    str(report["duplicated_documents"]),
                    str(report["redis_total_minus_mongo"]),
                    "never" if recover is None else f"{recover:.2f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def run(
    modes: Sequence[str],
    faults: Sequence[Fault],
    timing: Timing,
    output: Path,
    state_root: Path,
) -> dict:
    """Run every fault in every mode; write and return the report."""
    state_root.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    reports: list[dict] = []
    for mode in modes:
        reports.extend(run_mode(mode, faults, timing, state_root))
    result = {
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "timing": dataclasses.asdict(timing),
        "route_weights": "grpc=50,redis=50",
        "stream_claim_idle_s": FAULT_CLAIM_IDLE_S,
        "results": reports,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.faults",
        description="Inject faults into local stacks under load and count records.",
    )
    defaults = Timing()
    parser.add_argument(
        "--modes", default=",".join(MODES), help="Redis modes, comma-separated"
    )
    parser.add_argument(
        "--faults",
        default=",".join(FAULT_NAMES),
        help=f"faults to inject, comma-separated, from {', '.join(FAULT_NAMES)}",
    )
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="requests per second"
    )
    parser.add_argument(
        "--before",
        type=float,
        default=defaults.before_s,
        help="seconds of load before each fault (default: %(default)s)",
    )
    parser.add_argument(
        "--after",
        type=float,
        default=defaults.after_s,
        help="seconds of load after the faulty process is healthy again",
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=defaults.outage_s,
        help="seconds redis-server stays stopped and SecantusDB frozen",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=defaults.drain_s,
        help="seconds to wait for accepted records to be stored",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--state-root",
        type=Path,
        default=REPO_ROOT / "build" / "faults-state",
        help="parent directory of each stack's state directory",
    )
    return parser


def _split(text: str, choices: Sequence[str], option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in choices]
    if unknown or not items:
        raise SystemExit(
            f"{option}: invalid value {text!r}; expected a comma-separated list "
            f"from {', '.join(choices)}"
        )
    return items


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = _parser().parse_args(argv)
    modes = _split(args.modes, MODES, "--modes")
    chosen = _split(args.faults, FAULT_NAMES, "--faults")
    faults = [fault for fault in FAULTS if fault.name in chosen]
    timing = Timing(
        before_s=args.before,
        after_s=args.after,
        outage_s=args.outage,
        drain_s=args.drain,
        rate=args.rate,
    )
    try:
        result = run(modes, faults, timing, args.output, args.state_root)
    except StackError as error:
        log.error("%s", error)
        return 1
    print(format_table(result["results"]))
    print(f"Report written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
