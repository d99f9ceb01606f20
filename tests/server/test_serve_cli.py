"""`driftbayes serve`: the command wires state, config, seed, headers, OpenAPI and admin token.

uvicorn is replaced by :func:`driftbayes.server.app.serving` on loopback (whatever ``--host``
says), so each invocation serves a few requests and returns. Skipped until the command is
registered in ``driftbayes.cli``.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import driftbayes.server.app as server_app
from driftbayes import cli
from driftbayes.config import Config
from driftbayes.learner import DriftLearner
from driftbayes.state import save_state
from tests.helpers import LOADED, traffic

pytestmark = pytest.mark.skipif(
    not any(c.name == "serve" or (c.name is None and c.callback.__name__ == "serve")
            for c in cli.app.registered_commands),
    reason="`serve` is not registered in driftbayes.cli yet")

runner = CliRunner()


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    b = traffic(1500, seed=3, median_ms=2, personas=("web", "batch"))
    learner = DriftLearner(Config(update_interval=60, sensitivity=1, min_samples=1))
    path = tmp_path_factory.mktemp("serve") / "state.nc"
    save_state(learner.learn_many(b.take(np.argsort(b.ts, kind="stable"))), path)
    return path


@pytest.fixture
def served(monkeypatch):
    """Replace run_server: serve on loopback, make the requests the test queued, record all."""
    calls: list[dict] = []

    def fake_run_server(app, host, port):
        rec = {"host": host, "port": port, "app": app, "responses": {}}
        with server_app.serving(app) as url:
            for name, (method, path, headers) in fake_run_server.requests.items():
                rec["responses"][name] = httpx.request(method, url + path, headers=headers,
                                                       timeout=LOADED)
        calls.append(rec)

    fake_run_server.requests = {}
    monkeypatch.setattr(server_app, "run_server", fake_run_server)
    monkeypatch.delenv("DRIFTBAYES_ADMIN_TOKEN", raising=False)
    return fake_run_server, calls


def test_serve_loopback(state, served):
    fake, calls = served
    fake.requests = {"mock": ("GET", "/api/users/5", {"X-Persona": "batch"}),
                     "health": ("GET", "/__driftbayes/health", {}),
                     "missing": ("GET", "/nope", {})}
    res = runner.invoke(cli.app, ["serve", "--state", str(state), "--seed", "1", "--port", "0"])
    assert res.exit_code == 0, res.output
    (call,) = calls
    assert (call["host"], call["port"]) == ("127.0.0.1", 0)
    r = call["responses"]
    assert r["mock"].status_code in (200, 500)
    assert r["mock"].headers["x-driftbayes-pattern"].startswith(
        "GET /api/users/{id}; persona=batch; confidence=")
    assert float(r["mock"].headers["x-driftbayes-latency-ms"]) > 0
    assert r["health"].status_code == 200 and r["health"].json()["endpoints"] == 3
    assert r["missing"].status_code == 404
    assert "serving 3 endpoints" in res.output


def test_serve_public_host_needs_token(state, served):
    fake, calls = served
    fake.requests = {"anon": ("GET", "/__driftbayes/config", {}),
                     "mock": ("GET", "/api/cart", {})}
    res = runner.invoke(cli.app, ["serve", "--state", str(state), "--host", "0.0.0.0",
                                  "--no-headers"])
    assert res.exit_code == 0, res.output
    token = res.output.split("DRIFTBAYES_ADMIN_TOKEN to choose it): ")[1].split()[0]
    assert len(token) >= 20
    r = calls[0]["responses"]
    assert r["anon"].status_code == 401
    assert not [h for h in r["mock"].headers if h.lower().startswith("x-driftbayes")]
    # the token from the environment
    fake.requests = {"auth": ("GET", "/__driftbayes/config", {"Authorization": "Bearer abc"}),
                     "anon": ("GET", "/__driftbayes/config", {})}
    res = runner.invoke(cli.app, ["serve", "--state", str(state), "--host", "0.0.0.0"],
                        env={"DRIFTBAYES_ADMIN_TOKEN": "abc"})
    assert res.exit_code == 0, res.output
    assert "abc" not in res.output
    r = calls[1]["responses"]
    assert r["auth"].status_code == 200 and r["anon"].status_code == 401


def test_serve_openapi_examples_and_errors(state, served, tmp_path):
    fake, calls = served
    spec = tmp_path / "api.json"
    spec.write_text(json.dumps({"openapi": "3.0.0", "paths": {"/api/users/{userId}": {"get": {
        "responses": {str(s): {"content": {"application/json": {"example": {"id": 7, "s": s}}}}
                      for s in (200, 500)}}}}}))
    fake.requests = {"mock": ("GET", "/api/users/7", {})}
    res = runner.invoke(cli.app, ["serve", "--state", str(state), "--openapi", str(spec)])
    assert res.exit_code == 0, res.output
    r = calls[0]["responses"]["mock"]
    assert r.json() == {"id": 7, "s": r.status_code}
    res = runner.invoke(cli.app, ["serve", "--state", str(tmp_path / "none.nc")])
    assert res.exit_code == 2 and "no such state file" in res.output
    res = runner.invoke(cli.app, ["serve", "--state", str(state), "--openapi",
                                  str(tmp_path / "none.yaml")])
    assert res.exit_code == 2 and "none.yaml" in res.output
    assert len(calls) == 1
