"""Record validation: a table of good and bad cases, and the routed-record checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from covid_common import names
from covid_common.record import (
    AGE_RANGE_LABELS,
    STATES,
    CaseInput,
    ValidationError,
    age_range,
    format_timestamp,
    new_record,
    parse_record,
    validate_case,
)


def case(**changes) -> dict:
    data = {
        "name": "Pablo Mendoza",
        "location": "Guatemala City",
        "age": 35,
        "infected_type": "communitary",
        "state": "asymptomatic",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not ...}


GOOD = [
    ("plain", case(), {}),
    ("trimmed", case(name="  Pablo \u00a0 Mendoza\t"), {"name": "Pablo Mendoza"}),
    ("unicode", case(name="José Ñandú 李"), {"name": "José Ñandú 李"}),
    # "e" + combining acute accent becomes the single precomposed letter.
    ("nfc", case(location="Pe\u0301ten"), {"location": "P\u00e9ten"}),
    ("emoji", case(name="Ana 👩‍⚕️"), {"name": "Ana 👩‍⚕️"}),
    ("upper enum", case(state=" SEVERE ", infected_type="Imported"), {}),
    ("age 0", case(age=0), {"age": 0}),
    ("age 130", case(age=130), {"age": 130}),
    ("100 chars", case(name="x" * 100), {"name": "x" * 100}),
    ("record id", case(record_id="A.b_c:d-9"), {"record_id": "A.b_c:d-9"}),
    ("null record id", case(record_id=None), {"record_id": None}),
    ("64 char id", case(record_id="a" * 64), {"record_id": "a" * 64}),
]


@pytest.mark.parametrize(
    ("data", "expected"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD]
)
def test_valid_cases(data, expected):
    result = validate_case(data)

    assert isinstance(result, CaseInput)
    for field, value in expected.items():
        assert getattr(result, field) == value
    assert result.state == result.state.lower()
    assert result.infected_type == result.infected_type.lower()


BAD = [
    ("missing name", case(name=...), "name", "is required"),
    ("null name", case(name=None), "name", "is required"),
    ("empty name", case(name=""), "name", "must not be empty"),
    ("blank name", case(name=" \t\n "), "name", "must not be empty"),
    ("name number", case(name=5), "name", "must be a string"),
    ("name list", case(name=["a"]), "name", "must be a string"),
    ("101 chars", case(name="x" * 101), "name", "must be at most 100 characters"),
    (
        "huge",
        case(location="x" * 1_000_000),
        "location",
        "must be at most 100 characters",
    ),
    (
        "control",
        case(name="Pablo\x00"),
        "name",
        "must not contain control characters or line separators",
    ),
    (
        "inner tab",
        case(name="Pa\tblo"),
        "name",
        "must not contain control characters or line separators",
    ),
    (
        "escape",
        case(name="\x1b[31mred"),
        "name",
        "must not contain control characters or line separators",
    ),
    (
        "line sep",
        case(location="a\u2028b"),
        "location",
        "must not contain control characters or line separators",
    ),
    (
        "surrogate",
        case(name="a\ud800"),
        "name",
        "must not contain control characters or line separators",
    ),
    ("age bool", case(age=True), "age", "must be an integer"),
    ("age float", case(age=35.0), "age", "must be an integer"),
    ("age nan", case(age=float("nan")), "age", "must be an integer"),
    ("age inf", case(age=float("inf")), "age", "must be an integer"),
    ("age string", case(age="35"), "age", "must be an integer"),
    ("age negative", case(age=-1), "age", "must be between 0 and 130"),
    ("age 131", case(age=131), "age", "must be between 0 and 130"),
    ("age huge", case(age=10**30), "age", "must be between 0 and 130"),
    ("age missing", case(age=...), "age", "is required"),
    (
        "state unknown",
        case(state="zombie"),
        "state",
        "must be one of: " + ", ".join(STATES),
    ),
    (
        "type unknown",
        case(infected_type="airborne"),
        "infected_type",
        "must be one of: communitary, imported, contact",
    ),
    ("state int", case(state=1), "state", "must be a string"),
    ("unknown field", case(color="red"), "color", "unknown field"),
    (
        "router field",
        case(received_at="2024-01-01T00:00:00Z"),
        "received_at",
        "unknown field",
    ),
    ("path field", case(path="grpc"), "path", "unknown field"),
    (
        "id too long",
        case(record_id="a" * 65),
        "record_id",
        "must be 1 to 64 characters from letters, digits and . _ : -",
    ),
    (
        "id empty",
        case(record_id=""),
        "record_id",
        "must be 1 to 64 characters from letters, digits and . _ : -",
    ),
    (
        "id slash",
        case(record_id="a/b"),
        "record_id",
        "must be 1 to 64 characters from letters, digits and . _ : -",
    ),
    ("id number", case(record_id=12), "record_id", "must be a string"),
]


@pytest.mark.parametrize(
    ("data", "field", "problem"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_invalid_cases(data, field, problem):
    with pytest.raises(ValidationError) as failure:
        validate_case(data)

    assert failure.value.fields == {field: problem}


def test_all_problems_reported_at_once():
    with pytest.raises(ValidationError) as failure:
        validate_case({"name": "", "age": True, "extra": 1})

    assert set(failure.value.fields) == {
        "name",
        "location",
        "age",
        "infected_type",
        "state",
        "extra",
    }


@pytest.mark.parametrize("body", [[], "text", 5, None])
def test_non_object_rejected(body):
    with pytest.raises(ValidationError) as failure:
        validate_case(body)

    assert failure.value.fields == {"body": "must be a JSON object"}


def test_new_record_assigns_id_time_and_path():
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

    record = new_record(validate_case(case()), names.PATH_REDIS, now=moment)

    assert len(record.record_id) == 32
    assert record.received_at == "2024-05-01T12:00:00.123Z"
    assert record.received_ts == moment.timestamp()
    assert record.path == "redis"


def test_new_record_keeps_client_id():
    record = new_record(validate_case(case(record_id="key-1")), names.PATH_GRPC)

    assert record.record_id == "key-1"


def test_parse_record_round_trip():
    record = new_record(validate_case(case()), names.PATH_GRPC)

    assert parse_record(record.to_dict()) == record


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"record_id": None}, "record_id", "is required"),
        (
            {"received_at": "yesterday"},
            "received_at",
            "must be a UTC ISO-8601 timestamp",
        ),
        (
            {"received_at": "2024-05-01T12:00:00"},
            "received_at",
            "must be a UTC ISO-8601 timestamp",
        ),
        (
            {"received_at": "2024-05-01T12:00:00+02:00"},
            "received_at",
            "must be a UTC ISO-8601 timestamp",
        ),
        ({"received_ts": "1"}, "received_ts", "must be a number"),
        ({"received_ts": True}, "received_ts", "must be a number"),
        (
            {"received_ts": float("nan")},
            "received_ts",
            "must be a finite, non-negative number of seconds",
        ),
        ({"path": "carrier-pigeon"}, "path", "must be one of: grpc, redis"),
        ({"path": None}, "path", "is required"),
    ],
)
def test_parse_record_rejects_bad_router_fields(change, field, problem):
    data = new_record(validate_case(case()), names.PATH_GRPC).to_dict()
    data.update(change)

    with pytest.raises(ValidationError) as failure:
        parse_record(data)

    assert failure.value.fields == {field: problem}


@pytest.mark.parametrize(
    ("age", "label"),
    [
        (0, "0-9"),
        (9, "0-9"),
        (10, "10-19"),
        (35, "30-39"),
        (89, "80-89"),
        (90, "90+"),
        (130, "90+"),
    ],
)
def test_age_range(age, label):
    assert age_range(age) == label
    assert label in AGE_RANGE_LABELS


def test_format_timestamp_converts_to_utc():
    from datetime import timedelta, timezone

    moment = datetime(2024, 5, 1, 8, 0, 0, 5000, tzinfo=timezone(timedelta(hours=-6)))

    assert format_timestamp(moment) == "2024-05-01T14:00:00.005Z"
