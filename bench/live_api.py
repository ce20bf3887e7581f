"""Measure the live API's response times with 100,000 stored cases.

Starts a fresh SecantusDB and redis-server on free loopback ports. Loads the
cases into MongoDB (insert_many in batches, stored_at one second apart, ending
now) and writes the matching Redis views. Starts the live service under gunicorn,
waits until it has created its indexes, then times N sequential requests per
endpoint. Prints the figures and writes them to build/bench-live.json.

    python bench/live_api.py [--records 100000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pymongo
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "apps"), str(ROOT)]

from covid_common import names  # noqa: E402
from covid_common.record import INFECTED_TYPES, STATES, age_range  # noqa: E402
from live.reads import INDEXES  # noqa: E402

from tests.support.servers import (  # noqa: E402
    free_port,
    running,
    start_redis,
    start_secantus,
    wait_until,
)

OUTPUT = ROOT / "build" / "bench-live.json"
BATCH = 1000
LOCATIONS = [f"Location {number:02d}" for number in range(40)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="cases to load")
    parser.add_argument(
        "--requests", type=int, default=200, help="timed requests per endpoint"
    )
    arguments = parser.parse_args()
    # Exit through the context managers on SIGTERM, so the servers stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    with running(start_secantus) as mongo, running(start_redis) as cache:
        load_seconds = load(mongo.url, cache.url, arguments.records)
        print(f"loaded {arguments.records:,} cases in {load_seconds:.0f} s", flush=True)
        with live_service(mongo.url, cache.url) as base_url:
            index_seconds = wait_for_indexes(mongo.url)
            print(f"the live service created its indexes in {index_seconds:.0f} s")
            results = measure(base_url, arguments.requests)

    report = {
        "records": arguments.records,
        "requests_per_endpoint": arguments.requests,
        "load_seconds": round(load_seconds, 1),
        "index_seconds": round(index_seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "store": "SecantusDB (secantusdb 0.7.0b3) and redis-server on loopback",
        **results,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {OUTPUT}")


def load(mongo_url: str, redis_url: str, count: int) -> float:
    """Insert `count` cases into MongoDB and write the Redis views they imply."""
    started = time.monotonic()
    client = pymongo.MongoClient(mongo_url)
    cases = client[names.MONGO_DB_DEFAULT][names.MONGO_CASES_COLLECTION]
    cases.create_index("record_id", unique=True, name="record_id_unique")
    views = {key: Counter() for key in ("path", "location", "state", "type", "age")}
    latest: list[bytes] = []
    now = datetime.now(UTC).replace(microsecond=0)

    batch = []
    for number in range(count):
        stored_at = now - timedelta(seconds=count - number)
        document = {
            "record_id": f"bench-{number:07d}",
            "name": f"Person {number}",
            "location": LOCATIONS[(number * 7919) % len(LOCATIONS)],
            "age": (number * 37) % 100,
            "infected_type": INFECTED_TYPES[number % len(INFECTED_TYPES)],
            "state": STATES[(number * 3) % len(STATES)],
            "path": names.PATHS[number % 2],
            "received_at": stored_at,
            "stored_at": stored_at,
        }
        batch.append(document)
        views["path"][document["path"]] += 1
        views["location"][document["location"]] += 1
        views["state"][document["state"]] += 1
        views["type"][document["infected_type"]] += 1
        views["age"][age_range(document["age"])] += 1
        if number >= count - 100:
            entry = {**document, "received_at": None, "stored_at": None}
            entry["stored_at"] = stored_at.isoformat().replace("+00:00", "Z")
            latest.insert(0, orjson.dumps(entry))
        if len(batch) == BATCH:
            cases.insert_many(batch, ordered=False)
            batch = []
    if batch:
        cases.insert_many(batch, ordered=False)
    client.close()

    store = redis.Redis.from_url(redis_url)
    pipeline = store.pipeline(transaction=False)
    pipeline.set(names.RedisKeys.TOTAL, count)
    for key, counts in (
        (names.RedisKeys.BY_PATH, views["path"]),
        (names.RedisKeys.BY_LOCATION, views["location"]),
        (names.RedisKeys.BY_STATE, views["state"]),
        (names.RedisKeys.BY_INFECTED_TYPE, views["type"]),
        (names.RedisKeys.BY_AGE_RANGE, views["age"]),
    ):
        pipeline.hset(key, mapping=dict(counts))
    if latest:
        pipeline.rpush(names.RedisKeys.LATEST, *latest)
    pipeline.execute()
    store.close()
    return time.monotonic() - started


def wait_for_indexes(mongo_url: str) -> float:
    """Wait until the live service has created its indexes; return the seconds."""
    started = time.monotonic()
    client = pymongo.MongoClient(mongo_url)
    cases = client[names.MONGO_DB_DEFAULT][names.MONGO_CASES_COLLECTION]
    wait_until(
        lambda: set(INDEXES) <= set(cases.index_information()),
        "the live service's indexes",
        timeout_s=1800,
    )
    client.close()
    return time.monotonic() - started


class live_service:
    """The live service under gunicorn (1 worker, 4 threads) on a free port."""

    def __init__(self, mongo_url: str, redis_url: str):
        self.port = free_port()
        self.environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "apps"), str(ROOT)]),
            names.Env.HTTP_PORT: str(self.port),
            names.Env.MONGO_URL: mongo_url,
            names.Env.REDIS_URL: redis_url,
            names.Env.GUNICORN_WORKERS: "1",
            names.Env.GUNICORN_THREADS: "4",
            names.Env.PROMETHEUS_MULTIPROC_DIR: tempfile.mkdtemp(prefix="bench-live-"),
            names.Env.LOG_LEVEL: "WARNING",
        }

    def __enter__(self) -> str:
        command = [sys.executable, "-m", *names.LIVE.command]
        self.process = subprocess.Popen(
            command, cwd=ROOT / "apps", env=self.environment
        )
        url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: fetch(url + names.READY_ROUTE)[0] == 200, "live service")
        return url

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.status, response.read()


def measure(base_url: str, requests: int) -> dict:
    """Time the first summary (no cache yet), then `requests` calls per endpoint."""
    started = time.perf_counter()
    status, body = fetch(base_url + "/api/summary")
    cold_summary_ms = (time.perf_counter() - started) * 1000
    summary = json.loads(body)
    assert status == 200, body
    assert summary["total"] > 0, summary

    # A cursor in the middle of the table, for a deep page.
    _, body = fetch(base_url + "/api/cases?limit=100")
    middle = summary["total"] // 2
    before = json.loads(body)["next_before"]
    milliseconds, _, _ = before.partition("~")
    deep_cursor = f"{int(milliseconds) - middle * 1000}~bench-{middle:07d}"

    endpoints = {
        "page": "/",
        "summary": "/api/summary",
        "cases_first_page": "/api/cases?limit=20",
        "cases_deep_page": f"/api/cases?limit=20&before={deep_cursor}",
        "latest": "/api/latest?count=5",
        "age_ranges": "/api/age-ranges",
        "chart_state": "/charts/state.svg",
        "chart_age_range": "/charts/age-range.svg",
    }
    timings = {}
    for name, path in endpoints.items():
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            status, _ = fetch(base_url + path)
            samples.append((time.perf_counter() - started) * 1000)
            assert status == 200, (path, status)
        timings[name] = percentiles(samples)
        print(f"{name:18} {timings[name]}", flush=True)

    _, body = fetch(base_url + "/api/summary")
    return {
        "cold_summary_ms": round(cold_summary_ms, 1),
        "summary_aggregation_s": json.loads(body)["duration_s"],
        "endpoints_ms": timings,
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 2),
        "p95": round(cuts[94], 2),
        "p99": round(cuts[98], 2),
        "max": round(max(samples), 2),
    }


if __name__ == "__main__":
    main()
