"""SVG charts and the live configuration, without servers."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest
from covid_common.config import ConfigError
from live import charts
from live.config import load_live_config

SVG = "{http://www.w3.org/2000/svg}"
ENVIRONMENT = {
    "MONGO_URL": "mongodb://user:secret@db:27017/?retryWrites=false",
    "REDIS_URL": "redis://cache:6379/0",
}


def _slices(markup: str) -> dict[str, int]:
    root = ElementTree.fromstring(markup)
    return {
        element.get("data-label"): int(element.get("data-count"))
        for element in root.iter()
        if element.get("class") == "slice"
    }


def test_pie_one_slice_per_label():
    markup = charts.pie_svg("By state", {"mild": 3, "severe": 1}, ("mild", "severe"))

    assert _slices(markup) == {"mild": 3, "severe": 1}
    assert "mild 3 (75%)" in markup
    assert "severe 1 (25%)" in markup


def test_pie_single_label_is_circle():
    root = ElementTree.fromstring(charts.pie_svg("By state", {"mild": 4}))

    circles = [e for e in root.iter(f"{SVG}circle") if e.get("class") == "slice"]
    assert len(circles) == 1


def test_pie_empty_says_no_cases():
    markup = charts.pie_svg("By state", {})

    assert "No cases yet" in markup
    assert _slices(markup) == {}


def test_pie_colour_follows_label():
    first = charts.pie_svg("t", {"severe": 1, "mild": 9}, ("mild", "severe"))
    second = charts.pie_svg("t", {"severe": 9, "mild": 1}, ("mild", "severe"))

    def colour(markup: str, label: str) -> str:
        root = ElementTree.fromstring(markup)
        return next(e.get("fill") for e in root.iter() if e.get("data-label") == label)

    assert colour(first, "mild") == colour(second, "mild") == charts.PALETTE[0]
    assert colour(first, "severe") == charts.PALETTE[1]


def test_chart_labels_escaped():
    markup = charts.pie_svg("<t>", {"<script>alert(1)</script>": 1, "a'b\"c": 2})

    assert "<script>" not in markup
    root = ElementTree.fromstring(markup)  # Still well-formed XML.
    assert root.find(f"{SVG}title").text == "<t>"


def test_bar_axis_and_labels():
    counts = {"0-9": 0, "10-19": 7, "90+": 23}
    markup = charts.bar_svg("Ages", counts, "age range (years)")

    root = ElementTree.fromstring(markup)
    bars = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]
    assert [bar.get("data-label") for bar in bars] == list(counts)
    heights = [float(bar.get("height")) for bar in bars]
    assert heights[0] == 0
    assert heights[1] < heights[2]
    texts = [e.text for e in root.iter(f"{SVG}text")]
    assert "age range (years)" in texts
    assert "90+" in texts


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (0, (1, 1)),
        (1, (1, 1)),
        (3, (3, 1)),
        (23, (30, 10)),
        (1000, (1000, 500)),
        (1001, (1500, 500)),
    ],
)
def test_axis_scale_round_steps(maximum, expected):
    assert charts._axis_scale(maximum) == expected


def test_config_reads_environment():
    config = load_live_config({**ENVIRONMENT, "LIVE_SUMMARY_TTL_S": "5"})

    assert config.storage.mongo_db == "covid"
    assert config.http_port == 8085
    assert config.summary_ttl_s == 5.0


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"MONGO_URL": ""}, "MONGO_URL"),
        ({"REDIS_URL": "http://cache"}, "REDIS_URL"),
        ({"HTTP_PORT": "70000"}, "HTTP_PORT"),
        ({"LIVE_SUMMARY_TTL_S": "soon"}, "LIVE_SUMMARY_TTL_S"),
        ({"LIVE_SUMMARY_TTL_S": "-1"}, "LIVE_SUMMARY_TTL_S"),
        ({"MONGO_DB": "a/b"}, "MONGO_DB"),
    ],
)
def test_config_names_bad_variable(override, variable):
    with pytest.raises(ConfigError) as caught:
        load_live_config({**ENVIRONMENT, **override})

    assert caught.value.variable == variable
    assert variable in str(caught.value)
