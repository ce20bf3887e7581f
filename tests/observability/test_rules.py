"""Alert rules: they load in promtool, and each fires only when it should.

The cases run under `promtool test rules` (Prometheus 2.42 from Debian), which
evaluates the real rules file against synthetic series. Series values use
promtool's expanding notation: "0+60x30" is 0, 60, 120, ... for 31 samples, one
per `interval`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from observability import rules
from tests.observability.promtools import run_promtool, write_yaml

INTERVAL = "1m"


def _rules_file(directory: Path) -> Path:
    path = directory / "covid-rules.yml"
    path.write_text(rules.rules_yaml())
    return path


def _run_cases(directory: Path, cases: list[dict]):
    rules_file = _rules_file(directory)
    test_file = write_yaml(
        directory / "covid-rules-test.yml",
        {
            "rule_files": [rules_file.name],
            "evaluation_interval": INTERVAL,
            "tests": cases,
        },
    )
    return run_promtool(["test", "rules", test_file.name], directory)


def _alert(labels: dict, summary: str, description: str) -> dict:
    return {
        "exp_labels": labels,
        "exp_annotations": {"summary": summary, "description": description},
    }


def _rule(name: str) -> rules.AlertRule:
    return next(alert for alert in rules.ALERTS if alert.name == name)


def test_rules_file_passes_promtool_check(tmp_path: Path) -> None:
    result = run_promtool(["check", "rules", str(_rules_file(tmp_path))], tmp_path)

    assert result.returncode == 0, result.output
    assert f"SUCCESS: {len(rules.ALERTS)} rules found" in result.output


def test_alert_names_unique() -> None:
    alert_names = [alert.name for alert in rules.ALERTS]

    assert len(alert_names) == len(set(alert_names))


@pytest.mark.parametrize("alert", rules.ALERTS, ids=lambda alert: alert.name)
def test_alert_has_severity_and_text(alert: rules.AlertRule) -> None:
    rendered = alert.to_dict()

    assert rendered["labels"]["severity"] in ("warning", "critical")
    assert rendered["annotations"]["summary"]
    assert rendered["annotations"]["description"]


def test_rule_groups_shape() -> None:
    groups = rules.rule_groups()["groups"]

    assert [group["name"] for group in groups] == [rules.GROUP_NAME]
    assert len(groups[0]["rules"]) == len(rules.ALERTS)


ERROR_RATIO_CASES = [
    {
        # grpc: 0.25 errors/s against 0.75 accepted/s is 25 % of attempts.
        # redis: accepted without errors, so it stays quiet.
        "interval": INTERVAL,
        "input_series": [
            {
                "series": 'covid_router_records_routed_total{path="grpc"}',
                "values": "0+45x30",
            },
            {
                "series": "covid_router_downstream_errors_total"
                '{path="grpc",kind="timeout"}',
                "values": "0+15x30",
            },
            {
                "series": 'covid_router_records_routed_total{path="redis"}',
                "values": "0+60x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "4m",
                "alertname": "CovidPathErrorRatioHigh",
                "exp_alerts": [],
            },
            {
                "eval_time": "20m",
                "alertname": "CovidPathErrorRatioHigh",
                "exp_alerts": [
                    _alert(
                        {"severity": "warning", "path": "grpc"},
                        "The grpc path fails more than 5% of the records the "
                        "router sends it.",
                        "25% of the records routed to the grpc path failed "
                        "(timeouts, refused connections or 5xx responses) over "
                        "the last 5m.",
                    )
                ],
            },
        ],
    },
    {
        # Every attempt on the redis path fails, so it has no routed series at all.
        "interval": INTERVAL,
        "input_series": [
            {
                "series": "covid_router_downstream_errors_total"
                '{path="redis",kind="connection"}',
                "values": "0+60x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "CovidPathErrorRatioHigh",
                "exp_alerts": [
                    _alert(
                        {"severity": "warning", "path": "redis"},
                        "The redis path fails more than 5% of the records the "
                        "router sends it.",
                        "100% of the records routed to the redis path failed "
                        "(timeouts, refused connections or 5xx responses) over "
                        "the last 5m.",
                    )
                ],
            },
        ],
    },
]

SUBSCRIBER_LABELS = {"job": "redis-sub", "instance": "127.0.0.1:8083"}
_SUBSCRIBER_SERIES = (
    "covid_redis_subscriber_last_message_timestamp_seconds"
    '{job="redis-sub",instance="127.0.0.1:8083"}'
)

SUBSCRIBER_CASES = [
    {
        # The subscriber stamped its gauge last at t=0 while records keep going
        # to the redis path: silent for 10 minutes at the evaluation time.
        "interval": INTERVAL,
        "input_series": [
            {"series": _SUBSCRIBER_SERIES, "values": "0x30"},
            {
                "series": 'covid_router_records_routed_total{path="redis"}',
                "values": "0+60x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "CovidRedisSubscriberStalled",
                "exp_alerts": [
                    _alert(
                        {"severity": "critical", **SUBSCRIBER_LABELS},
                        "redis-sub 127.0.0.1:8083 has received nothing for more "
                        "than 60 s while records go to the Redis path.",
                        "No message or heartbeat for 10m 0s. Records published "
                        "meanwhile are not stored.",
                    )
                ],
            },
        ],
    },
    {
        # A fresh timestamp every minute (60 s, 120 s, ...) keeps it quiet. The
        # other services export the gauge too, at 0, and must not count.
        "interval": INTERVAL,
        "input_series": [
            {"series": _SUBSCRIBER_SERIES, "values": "0+60x30"},
            {
                "series": "covid_redis_subscriber_last_message_timestamp_seconds"
                '{job="router",instance="127.0.0.1:8080"}',
                "values": "0x30",
            },
            {
                "series": 'covid_router_records_routed_total{path="redis"}',
                "values": "0+60x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "CovidRedisSubscriberStalled",
                "exp_alerts": [],
            },
        ],
    },
    {
        # Silent, but nothing is routed to the redis path: nothing to alert on.
        "interval": INTERVAL,
        "input_series": [
            {"series": _SUBSCRIBER_SERIES, "values": "0x30"},
            {
                "series": 'covid_router_records_routed_total{path="redis"}',
                "values": "100x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "CovidRedisSubscriberStalled",
                "exp_alerts": [],
            },
        ],
    },
]


def _lag_series(path: str, slow: bool) -> list[dict]:
    """Lag histogram of one record per second, all in (2.5, 5] s when slow."""
    series = []
    for le in ("1", "2.5", "5", "+Inf"):
        counted = not slow or le in ("5", "+Inf")
        values = "0+60x30" if counted else "0x30"
        series.append(
            {
                "series": f'covid_record_lag_seconds_bucket{{path="{path}",le="{le}"}}',
                "values": values,
            }
        )
    return series


LAG_CASES = [
    {
        # redis: every record takes 2.5-5 s, so p99 interpolates to 4.975 s.
        # grpc: every record is under 1 s.
        "interval": INTERVAL,
        "input_series": _lag_series("redis", slow=True)
        + _lag_series("grpc", slow=False),
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "CovidRecordLagHigh",
                "exp_alerts": [
                    _alert(
                        {"severity": "warning", "path": "redis"},
                        "p99 lag from receipt to storage on the redis path is "
                        "above 2 s.",
                        "p99 end-to-end lag is 4.975s over the last 5m.",
                    )
                ],
            },
        ],
    },
]

UNHEARD_CASES = [
    {
        # One unheard publish per minute from t=10m.
        "interval": INTERVAL,
        "input_series": [
            {
                "series": 'covid_redis_publish_unheard_total{job="redis-pub"}',
                "values": "0x10 1+1x20",
            },
            {
                # Other services export the counter too; it never moves there.
                "series": 'covid_redis_publish_unheard_total{job="router"}',
                "values": "0x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "9m",
                "alertname": "CovidRedisPublishUnheard",
                "exp_alerts": [],
            },
            {
                "eval_time": "20m",
                "alertname": "CovidRedisPublishUnheard",
                "exp_alerts": [
                    _alert(
                        {"severity": "critical"},
                        "Redis PUBLISH calls reached no subscriber: records were lost.",
                        "About 5 records published in the last 5m reached no "
                        "subscriber and were not stored.",
                    )
                ],
            },
        ],
    },
]

STORAGE_CASES = [
    {
        "interval": INTERVAL,
        "input_series": [
            {
                "series": 'covid_storage_errors_total{path="grpc",store="mongo"}',
                "values": "0+60x30",
            },
            {
                "series": 'covid_storage_errors_total{path="redis",store="redis"}',
                "values": "5x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "CovidStorageErrors",
                "exp_alerts": [
                    _alert(
                        {"severity": "warning", "path": "grpc", "store": "mongo"},
                        "Writes to mongo fail on the grpc path.",
                        "1 failed mongo writes per second over the last 5m.",
                    )
                ],
            },
        ],
    },
]

TARGET_DOWN_CASES = [
    {
        # router goes down at t=5m; redis-sub stays up; a job that is not one of
        # the services is ignored.
        "interval": INTERVAL,
        "input_series": [
            {
                "series": 'up{job="router",instance="127.0.0.1:8080"}',
                "values": "1x5 0x20",
            },
            {
                "series": 'up{job="redis-sub",instance="127.0.0.1:8083"}',
                "values": "1x25",
            },
            {"series": 'up{job="node",instance="127.0.0.1:9100"}', "values": "0x25"},
        ],
        "alert_rule_test": [
            {
                "eval_time": "5m",
                "alertname": "CovidScrapeTargetDown",
                "exp_alerts": [],
            },
            {
                "eval_time": "10m",
                "alertname": "CovidScrapeTargetDown",
                "exp_alerts": [
                    _alert(
                        {
                            "severity": "critical",
                            "job": "router",
                            "instance": "127.0.0.1:8080",
                        },
                        "Prometheus cannot scrape router at 127.0.0.1:8080.",
                        "The target is down or its /metrics endpoint does not respond.",
                    )
                ],
            },
        ],
    },
]

CASES_BY_ALERT = {
    "CovidPathErrorRatioHigh": ERROR_RATIO_CASES,
    "CovidRedisSubscriberStalled": SUBSCRIBER_CASES,
    "CovidRecordLagHigh": LAG_CASES,
    "CovidRedisPublishUnheard": UNHEARD_CASES,
    "CovidStorageErrors": STORAGE_CASES,
    "CovidScrapeTargetDown": TARGET_DOWN_CASES,
}


def test_every_alert_has_promtool_cases() -> None:
    assert set(CASES_BY_ALERT) == {alert.name for alert in rules.ALERTS}


@pytest.mark.parametrize("alert_name", sorted(CASES_BY_ALERT))
def test_alert_fires_only_when_expected(alert_name: str, tmp_path: Path) -> None:
    result = _run_cases(tmp_path, CASES_BY_ALERT[alert_name])

    assert result.returncode == 0, result.output
    assert "SUCCESS" in result.output


def test_promtool_rejects_missing_alert(tmp_path: Path) -> None:
    """A case that expects no alert while the lag is 5 s must fail.

    This shows the harness can fail: promtool compares the alerts that fire
    with the expected ones and exits non-zero on a mismatch.
    """
    case = {
        "interval": INTERVAL,
        "input_series": _lag_series("redis", slow=True),
        "alert_rule_test": [
            {"eval_time": "20m", "alertname": "CovidRecordLagHigh", "exp_alerts": []}
        ],
    }

    result = _run_cases(tmp_path, [case])

    assert result.returncode != 0
    assert "CovidRecordLagHigh" in result.output


def test_lag_threshold_in_summary() -> None:
    assert f"{rules.LAG_P99_MAX_S:g} s" in _rule("CovidRecordLagHigh").summary
