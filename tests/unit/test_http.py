"""Shared Flask pieces: JSON errors for every failure, probes and metrics."""

from __future__ import annotations

import pytest
from covid_common import names
from covid_common.http import ApiError, create_base_app, read_json_object


@pytest.fixture
def app():
    failures = {}
    app = create_base_app(names.ROUTER, lambda: failures, max_body_bytes=64)
    app.config["failures"] = failures

    @app.post("/echo")
    def echo():
        return read_json_object()

    @app.get("/boom")
    def boom():
        raise RuntimeError("broken")

    @app.get("/teapot")
    def teapot():
        raise ApiError(418, "teapot", "I am a teapot.", {"pot": "is a teapot"})

    return app


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        ("get", "/missing", {}, 404, "not_found"),
        ("get", "/echo", {}, 405, "method_not_allowed"),
        (
            "post",
            "/echo",
            {"data": "x" * 100, "content_type": "application/json"},
            413,
            "payload_too_large",
        ),
        (
            "post",
            "/echo",
            {"data": "{}", "content_type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (
            "post",
            "/echo",
            {"data": "{", "content_type": "application/json"},
            400,
            "invalid_json",
        ),
        (
            "post",
            "/echo",
            {"data": "[]", "content_type": "application/json"},
            400,
            "invalid_json",
        ),
        ("get", "/boom", {}, 500, "internal_error"),
        ("get", "/teapot", {}, 418, "teapot"),
    ],
)
def test_errors_are_json(app, method, path, kwargs, status, error):
    response = getattr(app.test_client(), method)(path, **kwargs)

    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == error
    assert response.get_json()["message"]


def test_api_error_keeps_fields(app):
    response = app.test_client().get("/teapot")

    assert response.get_json()["fields"] == {"pot": "is a teapot"}


def test_json_charset_parameter_accepted(app):
    response = app.test_client().post(
        "/echo", data='{"a": 1}', content_type="application/json; charset=utf-8"
    )

    assert response.status_code == 200
    assert response.get_json() == {"a": 1}


def test_readyz_lists_failures(app):
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    app.config["failures"]["redis"] = "ping failed"
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["failures"] == {"redis": "ping failed"}


def test_healthz_and_metrics(app):
    client = app.test_client()
    client.get("/missing")

    assert client.get("/healthz").status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'covid_http_requests_total{method="GET",route="unmatched",service="router",status="404"}'
        in text
    )
