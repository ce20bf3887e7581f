"""The live page in headless Chromium: it draws the charts and follows new cases
without a reload. Saves a screenshot to build/live-page.png.

Without Chromium the tests skip, unless CI=true, where they fail. CHROMIUM_BINARY
replaces the default path /usr/bin/chromium.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from covid_common import names
from covid_common.config import StorageConfig
from covid_common.record import INFECTED_TYPES, STATES
from covid_common.storage import Storage

from tests.live.conftest import make_record, store_by_path
from tests.support.servers import free_port, wait_until

CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "build" / "live-page.png"
# Flags for a headless browser that must not reach any network but loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCATIONS = (
    "Guatemala City",
    "Mixco",
    "Villa Nueva",
    "Quetzaltenango",
    "Antigua",
    "Escuintla",
    "Coban",
)
FIRST_NAMES = ("Pablo", "Ana", "Luis", "Maria", "Jose", "Carmen", "Diego", "Lucia")
LAST_NAMES = ("Mendoza", "Lopez", "Garcia", "Perez", "Morales", "Castillo", "Reyes")
INITIAL_CASES = 58


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    """Skip without Chromium on a developer's machine, but fail in CI."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is not installed: run local/bootstrap.sh to install it"
    # CI services (GitHub Actions, GitLab CI and others) set CI=true.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _sample_records(count: int, seed: int) -> list:
    generator = random.Random(seed)
    records = []
    for _ in range(count):
        records.append(
            make_record(
                f"{generator.choice(FIRST_NAMES)} {generator.choice(LAST_NAMES)}",
                # Weighted so the top 3 locations stand apart.
                generator.choices(LOCATIONS, weights=(9, 6, 4, 3, 2, 2, 1))[0],
                max(0, min(int(generator.gauss(42, 22)), 130)),
                generator.choice(INFECTED_TYPES),
                generator.choices(STATES, weights=(6, 4, 5, 3, 2, 1, 4, 1))[0],
                generator.choice(names.PATHS),
            )
        )
    return records


@pytest.fixture
def live_server(storage_config: StorageConfig) -> Iterator[str]:
    """The live service under gunicorn, started as the local stack starts it."""
    port = free_port()
    metrics_dir = tempfile.mkdtemp(prefix="live-metrics-")
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "apps"), str(ROOT)]),
        names.Env.HTTP_PORT: str(port),
        names.Env.MONGO_URL: storage_config.mongo_url,
        names.Env.MONGO_DB: storage_config.mongo_db,
        names.Env.REDIS_URL: storage_config.redis_url,
        names.Env.GUNICORN_WORKERS: "1",
        names.Env.PROMETHEUS_MULTIPROC_DIR: metrics_dir,
        "LIVE_SUMMARY_TTL_S": "0.5",
    }
    command = [sys.executable, "-m", *names.LIVE.command]
    log_path = Path(metrics_dir) / "live.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT / "apps", env=environment, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/"

    def ready() -> bool:
        with urllib.request.urlopen(url + "readyz", timeout=2) as response:
            return response.status == 200

    try:
        wait_until(ready, f"the live service on port {port}", timeout_s=30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.returncode not in (0, -15):
            print(log_path.read_text())


def test_page_follows_new_cases(live_server, storage: Storage, cases_collection):
    from playwright.sync_api import expect, sync_playwright

    store_by_path(storage, _sample_records(INITIAL_CASES, seed=7))
    total = INITIAL_CASES

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(live_server)

        expect(page.locator("#total")).to_have_text(str(total))
        expect(page.locator("#chart-state svg .slice").first).to_be_visible()
        expect(page.locator("#chart-infected-type svg .slice").first).to_be_visible()
        expect(page.locator("#chart-age-range svg .bar")).to_have_count(10)
        expect(page.locator("#latest tr")).to_have_count(5)
        expect(page.locator("#cases tr")).to_have_count(20)
        expect(page.locator("#top-locations li")).to_have_count(3)
        expect(page.locator("#page-label")).to_have_text("Page 1 of 3")
        # A mark that a reload would wipe.
        page.evaluate("window.notReloaded = true")

        newest = [
            make_record("Zoe Newest", "Zacapa", 95, "imported", "critical", "redis"),
            make_record("Omar Newer", "Zacapa", 96, "imported", "critical", "grpc"),
        ]
        store_by_path(storage, [newest[1]])
        store_by_path(storage, [newest[0]])
        total += len(newest)

        expect(page.locator("#total")).to_have_text(str(total))
        expect(page.locator("#latest tr").first).to_contain_text("Zoe Newest")
        expect(page.locator("#cases tr").first).to_contain_text("Zoe Newest")
        expect(
            page.locator("#chart-state svg [data-label='critical']")
        ).to_have_attribute(
            "data-count", str(cases_collection.count_documents({"state": "critical"}))
        )
        age_bar = page.locator("#chart-age-range svg [data-label='90+']")
        expect(age_bar).to_have_attribute(
            "data-count", str(cases_collection.count_documents({"age": {"$gte": 90}}))
        )
        assert page.evaluate("window.notReloaded") is True

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        # Older pages keep their rows while new cases arrive.
        page.click("#older")
        expect(page.locator("#page-label")).to_have_text("Page 2 of 3")
        expect(page.locator("#cases tr")).to_have_count(20)
        first_on_page_two = page.locator("#cases tr").first.get_attribute(
            "data-record-id"
        )
        page.click("#newer")
        expect(page.locator("#page-label")).to_have_text("Page 1 of 3")
        expect(page.locator("#cases tr").first).to_contain_text("Zoe Newest")
        assert first_on_page_two not in {record.record_id for record in newest}

        browser.close()
