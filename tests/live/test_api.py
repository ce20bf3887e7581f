"""The live JSON API against real Redis and SecantusDB, with known stored data."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from covid_common import names
from covid_common.config import StorageConfig
from covid_common.record import AGE_RANGE_LABELS
from covid_common.storage import Storage
from live.app import create_app
from live.config import LiveConfig
from live.reads import PageCursor

from tests.live.conftest import make_record, store_by_path
from tests.support.servers import free_port

# (location, state, infected_type, age, path) of the stored cases. Locations have
# distinct counts (Mixco 6, Guatemala City 5, Antigua 4, Escuintla 3, Coban 2)
# so the top 3 is unambiguous.
KNOWN_CASES = (
    [("Mixco", "mild", "communitary", 34, "grpc")] * 4
    + [("Mixco", "severe", "imported", 71, "redis")] * 2
    + [("Guatemala City", "asymptomatic", "communitary", 8, "redis")] * 3
    + [("Guatemala City", "deceased", "contact", 90, "grpc")] * 2
    + [("Antigua", "recovered", "imported", 19, "grpc")] * 4
    + [("Escuintla", "mild", "contact", 45, "redis")] * 3
    + [("Coban", "critical", "communitary", 130, "grpc")] * 2
)


@pytest.fixture
def known_records(storage: Storage) -> list:
    records = [
        make_record(f"Person {index}", location, age, infected_type, state, path)
        for index, (location, state, infected_type, age, path) in enumerate(KNOWN_CASES)
    ]
    store_by_path(storage, records)
    return records


def test_summary_counts_equal_stored(client, known_records):
    body = client.get("/api/summary").get_json()

    assert body["total"] == len(KNOWN_CASES)
    assert body["by_path"] == dict(Counter(case[4] for case in KNOWN_CASES))
    assert body["by_state"] == dict(Counter(case[1] for case in KNOWN_CASES))
    assert body["by_infected_type"] == dict(Counter(case[2] for case in KNOWN_CASES))


def test_summary_top_three_locations(client, known_records):
    body = client.get("/api/summary").get_json()

    assert body["top_locations"] == [
        {"location": "Mixco", "count": 6},
        {"location": "Guatemala City", "count": 5},
        {"location": "Antigua", "count": 4},
    ]


def test_summary_top_locations_tie_by_name(client, storage):
    records = [make_record(f"P{n}", location) for n, location in enumerate("DCBAE")]
    store_by_path(storage, records)

    body = client.get("/api/summary").get_json()

    assert [entry["location"] for entry in body["top_locations"]] == ["A", "B", "C"]


def test_summary_pies_sorted_by_count(client, known_records):
    body = client.get("/api/summary").get_json()

    assert list(body["by_state"].values()) == sorted(
        body["by_state"].values(), reverse=True
    )
    assert list(body["by_state"])[0] == "mild"


def test_summary_reports_as_of(client, known_records):
    before = datetime.now(UTC)
    body = client.get("/api/summary").get_json()

    as_of = datetime.fromisoformat(body["as_of"])
    assert as_of >= before - timedelta(seconds=1)
    assert body["age_s"] >= 0
    assert body["duration_s"] >= 0


def test_summary_empty_database(client):
    body = client.get("/api/summary").get_json()

    assert body["total"] == 0
    assert body["by_path"] == {}
    assert body["top_locations"] == []


def test_summary_cached_within_ttl(storage_config, storage):
    config = LiveConfig("INFO", 0, storage_config, summary_ttl_s=3600.0)
    client = create_app(config, start_background=False).test_client()
    store_by_path(storage, [make_record("First")])
    assert client.get("/api/summary").get_json()["total"] == 1

    store_by_path(storage, [make_record("Second")])

    assert client.get("/api/summary").get_json()["total"] == 1


def test_summary_refreshes_after_ttl(client, storage):
    store_by_path(storage, [make_record("First")])
    assert client.get("/api/summary").get_json()["total"] == 1

    store_by_path(storage, [make_record("Second")])

    # With a zero TTL each request starts a background refresh and returns the
    # value it had, so the new count shows within a few requests.
    totals = []
    for _ in range(100):
        totals.append(client.get("/api/summary").get_json()["total"])
        if totals[-1] == 2:
            break
    assert totals[-1] == 2


def test_cases_newest_first_with_fields(client, storage):
    first = make_record("Older", "Mixco", 40, "imported", "mild", names.PATH_REDIS)
    second = make_record("Newer", "Antigua", 7, "contact", "severe")
    store_by_path(storage, [first])
    store_by_path(storage, [second])

    body = client.get("/api/cases").get_json()

    assert [case["name"] for case in body["cases"]] == ["Newer", "Older"]
    newest = body["cases"][0]
    assert newest["record_id"] == second.record_id
    assert newest["location"] == "Antigua"
    assert newest["age"] == 7
    assert newest["infected_type"] == "contact"
    assert newest["state"] == "severe"
    assert newest["path"] == names.PATH_GRPC
    assert newest["received_at"] == second.received_at
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", newest["stored_at"])
    assert body["next_before"] is None


def _spread_documents(now: datetime) -> list[dict]:
    """Cases stored over 90 days, with runs that share a millisecond."""
    offsets = (
        # Same millisecond, like a batch from store_many.
        [timedelta(seconds=5)] * 7
        + [timedelta(seconds=30 + n) for n in range(8)]
        + [timedelta(minutes=20)] * 3
        + [timedelta(hours=5 + n) for n in range(6)]
        + [timedelta(days=3 + n) for n in range(5)]
        + [timedelta(days=60 + n) for n in range(4)]
    )
    documents = []
    for index, offset in enumerate(offsets):
        moment = (now - offset).replace(microsecond=0)
        documents.append(
            {
                "record_id": f"case-{index:03d}",
                "name": f"Person {index}",
                "location": "Mixco",
                "age": 30,
                "infected_type": "communitary",
                "state": "mild",
                "path": names.PATH_GRPC,
                "received_at": moment,
                "stored_at": moment,
            }
        )
    return documents


@pytest.mark.parametrize("limit", [1, 3, 7, 10, 50])
def test_cases_pages_cover_all_once(client, cases_collection, limit):
    documents = _spread_documents(datetime.now(UTC))
    cases_collection.insert_many(documents)
    expected = [
        document["record_id"]
        for document in sorted(
            documents, key=lambda d: (d["stored_at"], d["record_id"]), reverse=True
        )
    ]

    seen: list[str] = []
    before = ""
    for _ in range(len(documents) + 2):
        body = client.get(f"/api/cases?limit={limit}&before={before}").get_json()
        assert len(body["cases"]) <= limit
        seen += [case["record_id"] for case in body["cases"]]
        if body["next_before"] is None:
            break
        assert len(body["cases"]) == limit
        before = body["next_before"]

    assert seen == expected


def test_cases_last_page_has_no_cursor(client, cases_collection):
    cases_collection.insert_many(_spread_documents(datetime.now(UTC))[:4])

    body = client.get("/api/cases?limit=4").get_json()

    assert len(body["cases"]) == 4
    assert body["next_before"] is None


def test_cases_page_reads_a_time_window(live_app, cases_collection):
    now = datetime.now(UTC)
    documents = _spread_documents(now)
    cases_collection.insert_many(documents)
    reader = live_app.extensions["live"]["reader"]

    page = reader.page(5, newest=now)

    # None was stored in the last second and the five newest in the last minute,
    # so the second window ends the search.
    assert page.queries == 2
    assert [case["record_id"] for case in page.cases] == [
        "case-006",
        "case-005",
        "case-004",
        "case-003",
        "case-002",
    ]


def test_cases_idle_collection_first_window(live_app, cases_collection):
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    cases_collection.insert_many(_spread_documents(newest))
    reader = live_app.extensions["live"]["reader"]

    summary = reader.summary()
    page = reader.page(5, newest=summary.newest_stored_at)

    # Nothing was stored in the last two days, yet the windows start at the
    # newest case, so the first window (1 s, 7 cases) contains the page.
    assert summary.newest_stored_at == newest - timedelta(seconds=5)
    assert page.queries == 1
    assert len(page.cases) == 5


def test_summary_newest_stored_at(client, cases_collection):
    documents = _spread_documents(datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC))
    cases_collection.insert_many(documents)

    body = client.get("/api/summary").get_json()

    assert body["newest_stored_at"] == "2024-05-01T11:59:55.000Z"


def test_cases_cursor_round_trip():
    cursor = PageCursor(datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC), "a.b:c-1")

    assert cursor.encode() == "1714564800123~a.b:c-1"
    assert PageCursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("before=yesterday", "before"),
        ("before=123", "before"),
        ("before=123~bad id", "before"),
        ("before=99999999999999999~x", "before"),
        ("before=123~" + "x" * 65, "before"),
    ],
)
def test_cases_bad_parameters_rejected(client, query, field):
    response = client.get(f"/api/cases?{query}")

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_parameter"
    assert field in body["fields"]


def test_latest_five_newest_first(client, storage):
    records = [make_record(f"Person {n}", age=n) for n in range(8)]
    for record in records:
        store_by_path(storage, [record])

    body = client.get("/api/latest").get_json()

    assert [case["record_id"] for case in body["cases"]] == [
        record.record_id for record in reversed(records[-5:])
    ]
    newest = body["cases"][0]
    assert newest["name"] == "Person 7"
    assert newest["age"] == 7
    assert newest["path"] == names.PATH_GRPC
    assert newest["stored_at"].endswith("Z")


def test_latest_count_parameter(client, storage):
    store_by_path(storage, [make_record(f"Person {n}") for n in range(4)])

    assert len(client.get("/api/latest?count=2").get_json()["cases"]) == 2
    assert len(client.get("/api/latest?count=100").get_json()["cases"]) == 4
    response = client.get("/api/latest?count=101")
    assert response.status_code == 400
    assert "count" in response.get_json()["fields"]


def test_latest_skips_malformed_entries(client, redis_client, storage):
    store_by_path(storage, [make_record("Good")])
    redis_client.lpush(names.RedisKeys.LATEST, "not json")

    body = client.get("/api/latest").get_json()

    assert [case["name"] for case in body["cases"]] == ["Good"]


def test_age_ranges_all_labels_in_order(client, storage):
    ages = [0, 9, 10, 35, 35, 89, 90, 130]
    store_by_path(
        storage, [make_record(f"P{n}", age=age) for n, age in enumerate(ages)]
    )

    body = client.get("/api/age-ranges").get_json()

    assert list(body["age_ranges"]) == list(AGE_RANGE_LABELS)
    expected = dict.fromkeys(AGE_RANGE_LABELS, 0)
    expected.update({"0-9": 2, "10-19": 1, "30-39": 2, "80-89": 1, "90+": 2})
    assert body["age_ranges"] == expected


def test_state_chart_slices_match_counts(client, known_records):
    response = client.get("/charts/state.svg")

    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    slices = dict(
        re.findall(r"data-label=\"([^\"]+)\" data-count='(\d+)'", response.text)
    )
    expected = Counter(case[1] for case in KNOWN_CASES)
    assert {label: int(count) for label, count in slices.items()} == expected


def test_infected_type_chart_slices(client, known_records):
    text = client.get("/charts/infected-type.svg").text

    slices = re.findall(r"class='slice' data-label=\"([^\"]+)\"", text)
    assert sorted(slices) == ["communitary", "contact", "imported"]


def test_age_chart_bars_in_label_order(client, storage):
    store_by_path(storage, [make_record("P", age=42)])

    text = client.get("/charts/age-range.svg").text

    bars = re.findall(r"class='bar' data-label=\"([^\"]+)\" data-count='(\d+)'", text)
    assert [label for label, _ in bars] == list(AGE_RANGE_LABELS)
    assert dict(bars)["40-49"] == "1"


def test_page_uses_relative_urls(client):
    html = client.get("/").text

    assert "<base" not in html
    for url in re.findall(r"(?:src|href)=\"([^\"]+)\"", html):
        assert not url.startswith("/"), url
    assert 'src="static/live.js"' in html
    assert client.get("/static/live.js").status_code == 200
    assert client.get("/static/live.css").status_code == 200


def test_page_labels_paths_without_mode(client):
    html = client.get("/").text

    # The Redis path moves records by pub/sub or by streams (REDIS_MODE), so
    # its tile names the path only.
    assert "Through gRPC" in html
    assert "Through Redis<" in html
    assert "pub/sub" not in html


def test_page_honours_forwarded_prefix(client):
    html = client.get("/", headers={"X-Forwarded-Prefix": "/live"}).text

    assert '<base href="/live/">' in html


def test_page_ignores_odd_forwarded_prefix(client):
    html = client.get("/", headers={"X-Forwarded-Prefix": "//evil.example"}).text

    assert "<base" not in html


def test_probes_and_metrics(client):
    assert client.get(names.HEALTH_ROUTE).status_code == 200
    assert client.get(names.READY_ROUTE).get_json() == {"status": "ready"}
    client.get("/api/age-ranges")

    metrics = client.get(names.METRICS_ROUTE).text

    assert (
        'covid_http_requests_total{method="GET",route="/api/age-ranges",'
        'service="live",status="200"}' in metrics
    )


def test_unknown_route_json_404(client):
    response = client.get("/api/nothing")

    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_stores_down_return_503():
    nothing = free_port()
    storage_config = StorageConfig(
        mongo_url=f"mongodb://127.0.0.1:{nothing}/?retryWrites=false",
        mongo_db="covid",
        redis_url=f"redis://127.0.0.1:{nothing}/0",
    )
    config = LiveConfig("INFO", 0, storage_config)
    client = create_app(config, start_background=False).test_client()

    cases = client.get("/api/cases")
    latest = client.get("/api/latest")
    ready = client.get(names.READY_ROUTE)

    assert cases.status_code == 503
    assert cases.get_json()["error"] == "mongo_unavailable"
    assert latest.status_code == 503
    assert latest.get_json()["error"] == "redis_unavailable"
    assert ready.status_code == 503
    assert set(ready.get_json()["failures"]) == {"mongo", "redis"}
