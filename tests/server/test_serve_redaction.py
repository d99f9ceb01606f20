"""Serve and record mode template request paths with the config's redaction policy."""

from __future__ import annotations

import json

import pytest

from driftbayes.config import Config
from driftbayes.io.recordings import read_events
from driftbayes.learner import DriftLearner
from driftbayes.server.app import MockEngine
from driftbayes.server.record import RecordProxy

PATH = "/users/alice@example.com/orders"


def _learned(tmp_path, cfg: Config) -> DriftLearner:
    """A state learned from a JSONL log of ``PATH`` read under ``cfg`` (as ``learn`` does)."""
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"ts": float(t), "method": "GET", "path": PATH,
                                       "status": 200, "latency_ms": 5.0}) + "\n"
                           for t in range(50)))
    learner = DriftLearner(cfg)
    for batch in read_events(log, config=cfg):
        learner.learn_many(batch)
    return learner


@pytest.mark.parametrize(("redact", "endpoint"), [
    ({"disable": ["email"]}, "GET /users/alice@example.com/orders"),
    ({}, "GET /users/{email}/orders"),
])
def test_serve_matches_paths_under_the_learned_policy(tmp_path, redact, endpoint):
    cfg = Config(update_interval=60, min_samples=1, redact=redact)
    learner = _learned(tmp_path, cfg)
    assert learner.endpoints_ == [endpoint]
    engine = MockEngine(learner, learner.config, seed=1)
    e, code = engine.match("GET", PATH)
    assert (e, code) == (0, 200)
    assert engine.handle("GET", PATH, {}).status != 404
    # another address fits the {email} template only when the detector is on
    other = engine.match("GET", "/users/bob@example.org/orders")[1]
    assert other == (404 if redact else 200)
    # with an OpenAPI document that does not describe the path: the same heuristic template
    doc = {"openapi": "3.0.3", "paths": {"/health": {"get": {"responses": {}}}}}
    assert MockEngine(learner, learner.config, seed=1, openapi=doc).match("GET", PATH) == (0, 200)


def test_record_mode_templates_with_the_config_policy():
    cfg = Config(redact={"disable": ["email"]})
    proxy = RecordProxy("http://upstream.invalid", DriftLearner(cfg), cfg)
    proxy._record(ts=1.0, method="GET", path=PATH, query="", status=200, latency_ms=3.0,
                  headers={}, client=None)
    assert proxy._buffer[-1]["endpoint"] == PATH
    default = RecordProxy("http://upstream.invalid", DriftLearner(Config()), Config())
    default._record(ts=1.0, method="GET", path=PATH, query="", status=200, latency_ms=3.0,
                    headers={}, client=None)
    assert default._buffer[-1]["endpoint"] == "/users/{email}/orders"
