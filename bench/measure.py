"""Measurements of one benchmark row: CPU time per process, stores, load generators.

CPU time comes from /proc/<pid>/stat (utime + stime, in clock ticks) of every
process in a group, children included, read before the load and after the
stores have caught up. Records come from MongoDB: the documents received since
the row started, so throughput, end-to-end lag and lost records all count what
was stored, not what the load generator received.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pymongo
from covid_common import names

from local.procs import descendants

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
REPO_ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).resolve().parent / "cases.lua"
LOCUSTFILE = REPO_ROOT / "load" / "locustfile.py"
# wrk counts a request that takes longer than this as a timeout error.
WRK_TIMEOUT = "10s"


def process_ticks(pid: int) -> int:
    """Return utime + stime of one process in clock ticks, 0 when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    # Fields after the parenthesised command: utime and stime are the 12th and
    # 13th (fields 14 and 15 of proc(5)).
    fields = text.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def tree_pids(root: int) -> list[int]:
    return [root, *(process.pid for process in descendants(root))]


class CpuMeter:
    """CPU ticks of named process groups, sampled twice.

    A process that exits between the samples loses its ticks, so the meter
    only suits long-lived processes such as the stack's. The load generator's
    CPU time comes from wait4 instead.
    """

    def __init__(self, groups: Mapping[str, Iterable[int]]):
        self._groups = {name: list(pids) for name, pids in groups.items()}
        self._start = self._sample()

    def _sample(self) -> dict[str, int]:
        return {
            name: sum(process_ticks(pid) for pid in pids)
            for name, pids in self._groups.items()
        }

    def seconds(self) -> dict[str, float]:
        """Return CPU seconds per group since the meter was created."""
        end = self._sample()
        return {
            name: (end[name] - self._start[name]) / CLOCK_TICKS_PER_S
            for name in self._groups
        }


def machine_busy_seconds() -> float:
    """Return the CPU seconds all processes on the machine used since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    busy = sum(
        int(value) for index, value in enumerate(fields[:8]) if index not in (3, 4)
    )
    return busy / CLOCK_TICKS_PER_S


@dataclass(frozen=True)
class LoadResult:
    """Totals, latency and accepted record_ids of one load generator run."""

    requests: int
    duration_s: float
    accepted: int
    rejected: int
    failed: int
    latency_ms: Mapping[str, float]  # p50, p95, p99, max
    accepted_ids: frozenset[str]
    cpu_s: float


def run_wrk(
    url: str,
    out_dir: Path,
    prefix: str,
    duration_s: float,
    threads: int,
    connections: int,
    mode: str = "single",
    batch_size: int = 100,
    rate: float | None = None,
) -> LoadResult:
    """Run wrk with bench/cases.lua and return its totals and accepted ids."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("accepted-*.txt"):
        old.unlink()
    per_thread_rate = f"{rate / threads:.3f}" if rate else "0"
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={WRK_TIMEOUT}",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        mode,
        prefix,
        str(out_dir),
        str(batch_size),
        per_thread_rate,
    ]
    with open(out_dir / "wrk.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        cpu_s = _wait_measuring(process, duration_s + 30)
    if process.returncode != 0:
        raise RuntimeError(
            f"wrk exited with status {process.returncode}; see {out_dir / 'wrk.log'}"
        )
    summary = json.loads((out_dir / "wrk.json").read_text())
    ids = set()
    for path in out_dir.glob("accepted-*.txt"):
        ids.update(line for line in path.read_text().split() if line)
    latency = summary["latency_us"]
    return LoadResult(
        requests=summary["requests"],
        duration_s=summary["duration_us"] / 1e6,
        accepted=summary["accepted"],
        rejected=summary["rejected"],
        failed=summary["failed"]
        + summary["connect_errors"]
        + summary["read_errors"]
        + summary["write_errors"]
        + summary["timeouts"],
        latency_ms={key: latency[key] / 1000 for key in ("p50", "p95", "p99", "max")},
        accepted_ids=frozenset(ids),
        cpu_s=cpu_s,
    )


def run_locust(url: str, out_dir: Path, duration_s: float, users: int) -> LoadResult:
    """Run load/locustfile.py headless with no wait between requests."""
    out_dir.mkdir(parents=True, exist_ok=True)
    responses = out_dir / "responses.jsonl"
    responses.unlink(missing_ok=True)
    stats = out_dir / "stats"
    command = [
        sys.executable,
        "-m",
        "locust",
        "--locustfile",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{max(1, round(duration_s))}s",
        "--stop-timeout",
        "5",
        "--host",
        url,
        "--json-file",
        str(stats),
        "--only-summary",
        "--responses-file",
        str(responses),
        "--wait",
        "0,0",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "apps"), str(REPO_ROOT)])
    started = time.monotonic()
    with open(out_dir / "locust.log", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
        )
        cpu_s = _wait_measuring(process, duration_s + 60)
    elapsed = time.monotonic() - started

    latencies: list[float] = []
    ids: set[str] = set()
    rejected = failed = 0
    with responses.open(encoding="utf-8") as lines:
        for line in lines:
            answer = json.loads(line)
            status = int(answer.get("status") or 0)
            if status in (200, 201) and answer.get("record_id"):
                ids.add(answer["record_id"])
            elif 400 <= status < 500:
                rejected += 1
            else:
                failed += 1
    stats_data = json.loads(stats.with_suffix(".json").read_text())
    entry = next(
        (item for item in stats_data if item.get("name") == names.CASES_ROUTE), None
    )
    if entry:
        latencies = _locust_percentiles(entry)
    return LoadResult(
        requests=len(ids) + rejected + failed,
        duration_s=min(elapsed, duration_s),
        accepted=len(ids),
        rejected=rejected,
        failed=failed,
        latency_ms=dict(zip(("p50", "p95", "p99", "max"), latencies, strict=False)),
        accepted_ids=frozenset(ids),
        cpu_s=cpu_s,
    )


def _locust_percentiles(entry: dict) -> list[float]:
    """Return p50, p95, p99 and max from a Locust stats entry's response times.

    Locust keeps response times in milliseconds, rounded into buckets, as a
    mapping from the rounded time to its count.
    """
    counts = sorted((float(ms), n) for ms, n in entry["response_times"].items())
    total = sum(n for _, n in counts)
    values = []
    for quantile in (0.50, 0.95, 0.99):
        seen = 0
        for ms, n in counts:
            seen += n
            if seen >= quantile * total:
                values.append(ms)
                break
    values.append(float(entry.get("max_response_time", counts[-1][0])))
    return values


def _wait_measuring(process: subprocess.Popen, timeout_s: float) -> float:
    """Wait for `process` and return the CPU seconds it used.

    os.wait4 returns the resource usage of the ended process, which includes
    the children it waited for.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class StoredRecords:
    """The records MongoDB received since a row started."""

    count: int
    ids: frozenset[str]
    first_received: datetime | None
    last_stored: datetime | None
    lag_ms: Mapping[str, float]  # p50, p99, max of stored_at - received_at


class CaseStore:
    """Reads the stack's case documents for one row."""

    def __init__(self, mongo_url: str, mongo_db: str):
        self._client = pymongo.MongoClient(
            mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True
        )
        self._cases = self._client[mongo_db][names.MONGO_CASES_COLLECTION]

    def close(self) -> None:
        self._client.close()

    def count_since(self, since: datetime) -> int:
        return self._cases.count_documents({"received_at": {"$gte": since}})

    def wait_for(
        self, since: datetime, expected: Iterable[str], timeout_s: float
    ) -> float:
        """Wait until every record_id in `expected` is stored; return the wait.

        Counting alone is not enough: records that the router reported as
        failed may still be stored, so the count can pass the number expected
        while accepted records are still on their way.
        """
        expected = set(expected)
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.count_since(since) >= len(expected):
                if expected <= self.read_since(since).ids:
                    break
                time.sleep(1.0)
            else:
                time.sleep(0.25)
        return time.monotonic() - started

    def read_since(self, since: datetime) -> StoredRecords:
        cursor = self._cases.find(
            {"received_at": {"$gte": since}},
            {"_id": 0, "record_id": 1, "received_at": 1, "stored_at": 1},
        )
        ids = set()
        lags = []
        first_received = last_stored = None
        for document in cursor:
            ids.add(document["record_id"])
            received, stored = document["received_at"], document["stored_at"]
            lags.append((stored - received).total_seconds() * 1000)
            if first_received is None or received < first_received:
                first_received = received
            if last_stored is None or stored > last_stored:
                last_stored = stored
        lags.sort()
        return StoredRecords(
            count=len(ids),
            ids=frozenset(ids),
            first_received=first_received,
            last_stored=last_stored,
            lag_ms={
                "p50": _quantile(lags, 0.50),
                "p99": _quantile(lags, 0.99),
                "max": lags[-1] if lags else 0.0,
            },
        )


def _quantile(values: list[float], quantile: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(quantile * len(values)))]


def utc_now() -> datetime:
    # MongoDB keeps milliseconds; truncating keeps `$gte now` from missing a
    # document stored in the same millisecond.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
