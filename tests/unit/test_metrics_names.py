"""Metric names and labels that dashboards and alert rules rely on."""

from __future__ import annotations

import pytest
from covid_common import metrics

EXPECTED = {
    "covid_http_requests": ("counter", ("service", "route", "method", "status")),
    "covid_http_request_duration_seconds": (
        "histogram",
        ("service", "route", "method"),
    ),
    "covid_router_records_routed": ("counter", ("path",)),
    "covid_router_records_rejected": ("counter", ("reason",)),
    "covid_router_downstream_errors": ("counter", ("path", "kind")),
    "covid_records_stored": ("counter", ("path",)),
    "covid_records_duplicate": ("counter", ("path",)),
    "covid_storage_errors": ("counter", ("path", "store")),
    "covid_record_lag_seconds": ("histogram", ("path",)),
    "covid_redis_publish_unheard": ("counter", ()),
    "covid_redis_subscriber_reconnects": ("counter", ()),
    "covid_redis_subscriber_last_message_timestamp_seconds": ("gauge", ()),
    "covid_grpc_server_requests": ("counter", ("method", "code")),
    "covid_grpc_server_request_duration_seconds": ("histogram", ("method",)),
}


def defined_metrics() -> dict:
    found = {}
    for value in vars(metrics).values():
        if hasattr(value, "_name") and hasattr(value, "_labelnames"):
            found[value._name] = (value._type, tuple(value._labelnames))
    return found


def test_every_metric_defined_once():
    assert defined_metrics() == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metric_prefix(name):
    assert name.startswith("covid_")
