"""Prometheus alert rules for the ingestion pipeline.

`rule_groups()` returns a Prometheus rules file as a dict: the local stack writes
it to YAML for its Prometheus, and the Pulumi program puts the same groups in a
PrometheusRule's `spec`. The expressions use only functions that Prometheus 2.42
(Debian 12's package, whose promtool the tests run) understands.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from covid_common import names

from observability import queries

GROUP_NAME = "covid-ingestion"
# Window of rate() and increase() in the rules. At kube-prometheus-stack's
# default 30 s scrape interval it spans ten scrapes, so one missed scrape does not
# empty a rate.
WINDOW = "5m"

# Thresholds. They are starting values for the local stack and a small cluster,
# not measured service-level objectives.
ERROR_RATIO_MAX = 0.05
LAG_P99_MAX_S = 2.0
# redis-sub stamps covid_redis_subscriber_last_message_timestamp_seconds on every
# message and every heartbeat (2 s apart by default), so 60 s without either
# means it has stopped reading.
SUBSCRIBER_SILENCE_MAX_S = 60

# Jobs whose scrape targets the TargetDown alert watches. On the cluster the
# ServiceMonitor sets job to the Kubernetes Service name, which is the same name.
SERVICE_JOBS = tuple(service.name for service in names.ALL_SERVICES)


@dataclass(frozen=True)
class AlertRule:
    name: str
    # The measured quantity, e.g. an error ratio per path. Its value is the
    # alert's $value, and it has data whenever its metrics do.
    signal: str
    # Comparison applied to the signal, e.g. "> 0.05".
    condition: str
    # How long the expression must hold before the alert fires (PromQL duration).
    for_: str
    severity: str
    summary: str
    description: str
    # Optional expression joined with `and on ()`: the alert fires only while
    # this one has a result.
    only_while: str = ""

    @property
    def expr(self) -> str:
        expr = f"({self.signal}) {self.condition}"
        if self.only_while:
            expr = f"{expr} and on () ({self.only_while})"
        return expr

    def to_dict(self) -> dict:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
            },
        }


def _by_path_rate(metric: str) -> str:
    return f"sum by (path) (rate({metric}[{WINDOW}]))"


_ERRORS = _by_path_rate("covid_router_downstream_errors_total")
_ROUTED = _by_path_rate("covid_router_records_routed_total")
# Attempts per path = accepted + failed. `or (errors * 0)` keeps a path whose
# every attempt failed (so it has no routed series yet) in the denominator.
_ATTEMPTS = f"(({_ROUTED}) or ({_ERRORS} * 0)) + on (path) ({_ERRORS})"

_SERVICE_JOBS_RE = "|".join(SERVICE_JOBS)

ALERTS: tuple[AlertRule, ...] = (
    AlertRule(
        name="CovidPathErrorRatioHigh",
        signal=f"({_ERRORS}) / on (path) ({_ATTEMPTS})",
        condition=f"> {ERROR_RATIO_MAX}",
        for_="5m",
        severity="warning",
        summary="The {{ $labels.path }} path fails more than "
        f"{ERROR_RATIO_MAX:.0%} of the records the router sends it.",
        description="{{ $value | humanizePercentage }} of the records routed to "
        "the {{ $labels.path }} path failed (timeouts, refused connections or 5xx "
        "responses) over the last " + WINDOW + ".",
    ),
    AlertRule(
        name="CovidRedisSubscriberStalled",
        signal=(
            "time() - covid_redis_subscriber_last_message_timestamp_seconds"
            f"{{{queries.REDIS_SUB_JOB}}}"
        ),
        condition=f"> {SUBSCRIBER_SILENCE_MAX_S}",
        only_while=(
            f'sum(rate(covid_router_records_routed_total{{path="{names.PATH_REDIS}"}}'
            f"[{WINDOW}])) > 0"
        ),
        for_="1m",
        severity="critical",
        summary="redis-sub {{ $labels.instance }} has received nothing for "
        f"more than {SUBSCRIBER_SILENCE_MAX_S} s while records go to the Redis path.",
        description="No message or heartbeat for {{ $value | humanizeDuration }}. "
        "Records published meanwhile are not stored.",
    ),
    AlertRule(
        name="CovidRecordLagHigh",
        signal=(
            "histogram_quantile(0.99, sum by (path, le) "
            f"(rate(covid_record_lag_seconds_bucket[{WINDOW}])))"
        ),
        condition=f"> {LAG_P99_MAX_S}",
        for_="5m",
        severity="warning",
        summary="p99 lag from receipt to storage on the {{ $labels.path }} path "
        f"is above {LAG_P99_MAX_S:g} s.",
        description="p99 end-to-end lag is {{ $value | humanizeDuration }} "
        "over the last " + WINDOW + ".",
    ),
    AlertRule(
        name="CovidRedisPublishUnheard",
        signal=queries.unheard_publish_increase(WINDOW),
        condition="> 0",
        for_="0m",
        severity="critical",
        summary="Redis PUBLISH calls reached no subscriber: records were lost.",
        description="About {{ $value | humanize }} records published in the last "
        + WINDOW
        + " reached no subscriber and were not stored.",
    ),
    AlertRule(
        name="CovidStorageErrors",
        signal=f"sum by (path, store) (rate(covid_storage_errors_total[{WINDOW}]))",
        condition="> 0",
        for_="2m",
        severity="warning",
        summary="Writes to {{ $labels.store }} fail on the {{ $labels.path }} path.",
        description="{{ $value | humanize }} failed {{ $labels.store }} writes per "
        "second over the last " + WINDOW + ".",
    ),
    AlertRule(
        name="CovidScrapeTargetDown",
        signal=f'up{{job=~"{_SERVICE_JOBS_RE}"}}',
        condition="== 0",
        for_="1m",
        severity="critical",
        summary="Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}.",
        description="The target is down or its /metrics endpoint does not respond.",
    ),
)


def rule_groups() -> dict:
    """Return the alert rules as a Prometheus rules file: {"groups": [...]}."""
    return {
        "groups": [
            {
                "name": GROUP_NAME,
                "rules": [alert.to_dict() for alert in ALERTS],
            }
        ]
    }


def rules_yaml() -> str:
    """Render `rule_groups()` as the YAML text of a Prometheus rules file."""
    return yaml.safe_dump(rule_groups(), sort_keys=False, width=10_000)
