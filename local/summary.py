"""Summary of a load run: the responses the load generator got, the stores' contents.

Lost records are found by comparing record_ids, not counts: the set of ids the
router accepted (from the load generator's responses file) against the ids in
MongoDB.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pymongo
import redis
from covid_common import names

from load.check_stats import Totals

ACCEPTED_STATUSES = (200, 201)
# How many lost record_ids the summary lists; the count covers all of them.
LOST_IDS_LISTED = 20


@dataclass(frozen=True)
class Responses:
    """Counts of the responses in the load generator's responses file."""

    sent: int
    accepted_new: int  # 201
    accepted_duplicate: int  # 200: the record_id was already stored
    rejected: int  # 4xx
    failed: int  # 5xx, connection errors, and 2xx responses without a record_id
    by_status: Mapping[int, int]
    # record_id -> path, for every accepted record.
    accepted_ids: Mapping[str, str]

    @property
    def accepted(self) -> int:
        return self.accepted_new + self.accepted_duplicate


def read_responses(path: Path) -> Responses:
    """Count the answers in a responses file written by load/locustfile.py."""
    by_status: Counter[int] = Counter()
    accepted_ids: dict[str, str] = {}
    new = duplicate = rejected = failed = 0
    if path.exists():
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                answer = json.loads(line)
                status = int(answer.get("status") or 0)
                by_status[status] += 1
                record_id = answer.get("record_id")
                if status in ACCEPTED_STATUSES and record_id:
                    accepted_ids[record_id] = answer.get("path") or "unknown"
                    if status == 201:
                        new += 1
                    else:
                        duplicate += 1
                elif 400 <= status < 500:
                    rejected += 1
                else:
                    failed += 1
    return Responses(
        sent=sum(by_status.values()),
        accepted_new=new,
        accepted_duplicate=duplicate,
        rejected=rejected,
        failed=failed,
        by_status=dict(sorted(by_status.items())),
        accepted_ids=accepted_ids,
    )


@dataclass(frozen=True)
class StoreState:
    """Contents of MongoDB and the Redis views after a run."""

    mongo_documents: int
    mongo_ids: frozenset[str]
    stored_by_path: Mapping[str, int]
    first_received: datetime | None
    last_stored: datetime | None
    redis_total: int
    redis_by_path: Mapping[str, int]

    @property
    def duplicated_ids(self) -> int:
        """Documents beyond the first for any record_id; the unique index keeps it 0."""
        return self.mongo_documents - len(self.mongo_ids)


class Stores:
    """Read access to the stack's MongoDB collection and Redis views."""

    def __init__(self, mongo_url: str, mongo_db: str, redis_url: str) -> None:
        self.mongo = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
        self.cases = self.mongo[mongo_db][names.MONGO_CASES_COLLECTION]
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)

    def close(self) -> None:
        self.mongo.close()
        self.redis.close()

    def quick_counts(self) -> tuple[int, int]:
        """Return (MongoDB documents, Redis total) without reading the documents."""
        return self.cases.count_documents({}), int(
            self.redis.get(names.RedisKeys.TOTAL) or 0
        )

    def read(self) -> StoreState:
        documents = 0
        ids: set[str] = set()
        by_path: Counter[str] = Counter()
        first_received: datetime | None = None
        last_stored: datetime | None = None
        projection = {
            "_id": 0,
            "record_id": 1,
            "path": 1,
            "received_at": 1,
            "stored_at": 1,
        }
        for document in self.cases.find({}, projection):
            documents += 1
            ids.add(document.get("record_id"))
            by_path[document.get("path") or "unknown"] += 1
            received, stored = document.get("received_at"), document.get("stored_at")
            if isinstance(received, datetime):
                first_received = min(filter(None, (first_received, received)))
            if isinstance(stored, datetime):
                last_stored = max(filter(None, (last_stored, stored)))
        redis_by_path = {
            path: int(count)
            for path, count in self.redis.hgetall(names.RedisKeys.BY_PATH).items()
        }
        return StoreState(
            mongo_documents=documents,
            mongo_ids=frozenset(ids),
            stored_by_path=dict(by_path),
            first_received=first_received,
            last_stored=last_stored,
            redis_total=int(self.redis.get(names.RedisKeys.TOTAL) or 0),
            redis_by_path=redis_by_path,
        )


def wait_for_drain(
    stores: Stores, expected_ids: set[str], timeout_s: float
) -> StoreState:
    """Wait until MongoDB has every expected id and Redis counted every document.

    Returns the last state read, complete or not, once `timeout_s` has passed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        documents, redis_total = stores.quick_counts()
        complete_enough = documents >= len(expected_ids) and redis_total >= documents
        if complete_enough or time.monotonic() > deadline:
            state = stores.read()
            if expected_ids <= state.mongo_ids and state.redis_total == len(
                state.mongo_ids
            ):
                return state
            if time.monotonic() > deadline:
                return state
        time.sleep(1)


def _rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds and seconds > 0 else None


def _required_paths(route_weights: str) -> list[str]:
    """Return the paths whose weight in ROUTE_WEIGHTS is above zero."""
    weights: dict[str, float] = {}
    for item in route_weights.split(","):
        path, _, weight = item.partition("=")
        try:
            weights[path.strip()] = float(weight)
        except ValueError:
            return list(names.PATHS)
    return [path for path in names.PATHS if weights.get(path, 0) > 0]


def build_summary(
    *,
    duration_s: int,
    users: int,
    route_weights: str,
    mongo_db: str,
    responses: Responses,
    stores: StoreState,
    locust: Totals | None,
) -> dict:
    """Return the run summary as a JSON-ready dict, with "problems" and "passed"."""
    accepted_by_path = Counter(responses.accepted_ids.values())
    lost = sorted(set(responses.accepted_ids) - stores.mongo_ids)
    unexpected = len(stores.mongo_ids - set(responses.accepted_ids))

    load_window = None
    if locust and locust.start_time and locust.end_time:
        load_window = locust.end_time - locust.start_time
    store_window = None
    if stores.first_received and stores.last_stored:
        store_window = (stores.last_stored - stores.first_received).total_seconds()

    problems = []
    if lost:
        problems.append(f"{len(lost)} accepted records are not in MongoDB")
    for path in _required_paths(route_weights):
        if accepted_by_path.get(path, 0) == 0:
            problems.append(f"the {path} path accepted no records")
    if stores.duplicated_ids:
        problems.append(f"{stores.duplicated_ids} MongoDB documents repeat a record_id")
    if stores.redis_total != len(stores.mongo_ids):
        problems.append(
            f"Redis counts {stores.redis_total} records but MongoDB has "
            f"{len(stores.mongo_ids)}"
        )

    return {
        "duration_s": duration_s,
        "users": users,
        "route_weights": route_weights,
        "requests": {
            "sent": responses.sent,
            "accepted": responses.accepted,
            "accepted_new": responses.accepted_new,
            "accepted_duplicate": responses.accepted_duplicate,
            "rejected": responses.rejected,
            "failed": responses.failed,
            "by_status": {str(k): v for k, v in responses.by_status.items()},
        },
        "paths": {
            path: {
                "accepted": accepted_by_path.get(path, 0),
                "stored": stores.stored_by_path.get(path, 0),
                "redis_count": stores.redis_by_path.get(path, 0),
            }
            for path in names.PATHS
        },
        "mongo": {"database": mongo_db, "records": stores.mongo_documents},
        "redis_total": stores.redis_total,
        "lost": len(lost),
        "lost_record_ids": lost[:LOST_IDS_LISTED],
        # Stored but never acknowledged to the load generator, e.g. answers that
        # timed out after the record was written.
        "stored_without_acknowledgement": unexpected,
        "duplicated": {
            "mongo_documents_sharing_a_record_id": stores.duplicated_ids,
            "redis_total_minus_mongo_records": stores.redis_total
            - len(stores.mongo_ids),
        },
        "throughput": {
            "load_window_s": round(load_window, 1) if load_window else None,
            "accepted_per_s": _rate(responses.accepted, load_window),
            "store_window_s": round(store_window, 1) if store_window else None,
            "stored_per_s": _rate(stores.mongo_documents, store_window),
        },
        "latency_ms": {
            "p50": locust.p50_ms if locust else None,
            "p95": locust.p95_ms if locust else None,
            "p99": locust.p99_ms if locust else None,
            "max": round(locust.max_ms, 1) if locust and locust.max_ms else None,
            "mean": round(locust.mean_ms, 1) if locust and locust.mean_ms else None,
        },
        "locust": {
            "requests": locust.requests if locust else None,
            "failures": locust.failures if locust else None,
            "fail_ratio": round(locust.fail_ratio, 4) if locust else None,
        },
        "problems": problems,
        "passed": not problems,
    }


def _number(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_summary(summary: dict) -> str:
    """Return the summary as text for the terminal."""
    requests = summary["requests"]
    throughput = summary["throughput"]
    latency = summary["latency_ms"]
    duplicated = summary["duplicated"]
    lines = [
        f"Load run: {summary['duration_s']} s, {summary['users']} users, "
        f"weights {summary['route_weights']}",
        f"  requests  sent {_number(requests['sent'])}, accepted "
        f"{_number(requests['accepted'])} (new {_number(requests['accepted_new'])}, "
        f"duplicate {_number(requests['accepted_duplicate'])}), rejected "
        f"{_number(requests['rejected'])}, failed {_number(requests['failed'])}",
        f"  {'path':<8}{'accepted':>10}{'stored':>10}{'redis':>10}",
    ]
    for path, counts in summary["paths"].items():
        lines.append(
            f"  {path:<8}{_number(counts['accepted']):>10}"
            f"{_number(counts['stored']):>10}{_number(counts['redis_count']):>10}"
        )
    lines += [
        f"  MongoDB   {_number(summary['mongo']['records'])} records in "
        f"{summary['mongo']['database']}; "
        f"Redis total {_number(summary['redis_total'])}",
        f"  lost {summary['lost']}, MongoDB duplicates "
        f"{duplicated['mongo_documents_sharing_a_record_id']}, Redis minus MongoDB "
        f"{duplicated['redis_total_minus_mongo_records']}, stored without "
        f"acknowledgement {summary['stored_without_acknowledgement']}",
        f"  throughput  accepted {_number(throughput['accepted_per_s'])}/s over "
        f"{_number(throughput['load_window_s'])} s, stored "
        f"{_number(throughput['stored_per_s'])}/s over "
        f"{_number(throughput['store_window_s'])} s",
        f"  latency ms  p50 {_number(latency['p50'])}, p95 {_number(latency['p95'])}, "
        f"p99 {_number(latency['p99'])}, max {_number(latency['max'])}",
    ]
    if summary["problems"]:
        lines.append("FAILED: " + "; ".join(summary["problems"]))
    else:
        lines.append(
            "PASSED: every accepted record is stored once in MongoDB and counted "
            "once in Redis"
        )
    return "\n".join(lines)
