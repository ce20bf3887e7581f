"""Parts of the fault runner that need no stack: recovery time and answer paths."""

from __future__ import annotations

import pytest

from local.faults import Outcome, _answer_path, _recovery, _split, format_table


def outcome(sent_at: float, status: int, path: str = "redis") -> Outcome:
    return Outcome(f"id-{sent_at}", sent_at, sent_at + 0.1, status, path)


def test_recovery_is_zero_without_failures():
    outcomes = [outcome(9.0, 201), outcome(10.5, 201)]

    assert _recovery(outcomes, fault_at=10.0) == 0.0


def test_recovery_ends_at_first_success_after_last_failure():
    outcomes = [
        outcome(10.0, 503),
        outcome(11.0, 201),
        outcome(12.0, 502),
        outcome(13.0, 201),
        outcome(14.0, 201),
    ]

    assert _recovery(outcomes, fault_at=10.0) == pytest.approx(3.1)


def test_recovery_is_none_when_failures_never_stop():
    outcomes = [outcome(10.0, 201), outcome(11.0, 503)]

    assert _recovery(outcomes, fault_at=10.0) is None


def test_failures_before_the_fault_do_not_count():
    outcomes = [outcome(5.0, 503), outcome(11.0, 201)]

    assert _recovery(outcomes, fault_at=10.0) == 0.0


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (b'{"record_id": "a", "path": "grpc"}', "grpc"),
        (b'{"error": "x", "message": "The redis path could not deliver"}', "redis"),
        (
            b'{"error": "bad_gateway", "message": "The router is not reachable."}',
            "unknown",
        ),
        (b"<html>", "unknown"),
        (b"[]", "unknown"),
    ],
)
def test_answer_path(data, path):
    assert _answer_path(data) == path


def test_split_rejects_unknown_names():
    with pytest.raises(SystemExit, match="--faults: invalid value 'nope'"):
        _split("nope", ("redis-restart",), "--faults")


def test_table_has_a_row_per_path():
    report = {
        "mode": "streams",
        "fault": "redis-restart",
        "duplicated_documents": 0,
        "redis_total_minus_mongo": 0,
        "paths": {
            "grpc": {"sent": 3, "accepted": 3, "rejected": 0, "failed": 0,
                     "stored": 3, "lost": 0, "recover_s": 0.0},
            "redis": {"sent": 4, "accepted": 2, "rejected": 0, "failed": 2,
                      "stored": 2, "lost": 0, "recover_s": None},
        },
    }  # fmt: skip

    lines = format_table([report]).splitlines()

    assert len(lines) == 4
    assert lines[2].split(" | ")[2].strip() == "grpc"
    assert lines[3].split(" | ")[-1].strip() == "never"
