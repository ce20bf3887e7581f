"""The benchmark's baseline: a trivial JSON endpoint under the services' gunicorn.

POST /cases reads the body and returns 201 {"ok": true}. The benchmark runs it
with the same gunicorn configuration and behind the same nginx as the router,
so the ratio of the pipeline's throughput to this app's shows what the
pipeline costs beyond serving HTTP from Flask.

    HTTP_PORT=9000 gunicorn --config python:covid_common.gunicorn_conf \\
        bench.trivial_app:app
"""

from __future__ import annotations

from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/cases")
def post_case() -> Response:
    request.get_data(cache=False)
    return Response(b'{"ok":true}', status=201, mimetype="application/json")
