"""A short `make faults`: each fault for a few seconds, in both Redis modes.

Streams mode and the gRPC path must lose and duplicate nothing under every
fault. Pub/sub may lose records that were in flight; the report must count each
of them, so lost equals accepted minus stored and every lost id is listed.
"""

from __future__ import annotations

import pytest
from covid_common import names

from local import faults

SHORT = faults.Timing(
    before_s=1.5, after_s=2.0, outage_s=2.0, drain_s=12.0, rate=20.0, workers=12
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, list[dict]]:
    # Short state paths: supervisord's socket path must stay under 108 bytes.
    root = tmp_path_factory.mktemp("faults", numbered=True)
    return {
        mode: faults.run_mode(mode, faults.FAULTS, SHORT, root) for mode in faults.MODES
    }


def _rows(reports: dict[str, list[dict]], mode: str):
    for report in reports[mode]:
        for path, result in report["paths"].items():
            yield report, path, result


def test_every_fault_ran_in_each_mode(reports):
    for mode in faults.MODES:
        assert [r["fault"] for r in reports[mode]] == list(faults.FAULT_NAMES)


def test_each_path_got_accepted_records(reports):
    for mode in faults.MODES:
        for report in reports[mode]:
            for path in names.PATHS:
                accepted = report["paths"][path]["accepted"]
                assert accepted > 0, (mode, report["fault"], path)


def test_streams_mode_loses_nothing(reports):
    for report, path, result in _rows(reports, "streams"):
        assert result["lost"] == 0, (report["fault"], path, result["lost_ids"])


def test_grpc_path_loses_nothing(reports):
    for mode in faults.MODES:
        for report in reports[mode]:
            result = report["paths"][names.PATH_GRPC]
            assert result["lost"] == 0, (mode, report["fault"], result["lost_ids"])


def test_no_mode_duplicates_documents(reports):
    for mode in faults.MODES:
        for report in reports[mode]:
            assert report["duplicated_documents"] == 0, (mode, report["fault"])
            assert report["all_duplicated_documents"] == 0, (mode, report["fault"])


def test_streams_views_count_each_document_once(reports):
    for report in reports["streams"]:
        assert report["redis_total_minus_mongo"] == 0, report["fault"]


def test_pubsub_losses_are_all_counted(reports):
    for report, path, result in _rows(reports, "pubsub"):
        where = (report["fault"], path)
        assert result["lost"] == result["accepted"] - result["stored"], where
        assert len(result["lost_ids"]) == result["lost"], where


def test_requests_add_up(reports):
    for mode in faults.MODES:
        for report, path, result in _rows(reports, mode):
            answered = result["accepted"] + result["rejected"] + result["failed"]
            assert answered == result["sent"], (mode, report["fault"], path)
            assert result["rejected"] == 0, (mode, report["fault"], path)


def test_paths_recover_after_each_fault(reports):
    for mode in faults.MODES:
        for report, path, result in _rows(reports, mode):
            assert result["recover_s"] is not None, (mode, report["fault"], path)
