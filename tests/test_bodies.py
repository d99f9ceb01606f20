"""Response bodies: redaction of recorded bodies, OpenAPI schema instances, bodies in the state."""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import orjson
import pytest

from driftbayes.bodies import redact_body, response_example, schema_instance
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.learner import DriftLearner
from driftbayes.redact import REDACTED, RedactionPolicy
from driftbayes.state import load_state, save_state

POLICY = RedactionPolicy.from_config(Config())
DOC = {"id": 1, "token": "t0p", "items": [{"api_key": "k", "n": 2}], "text": "é"}


@pytest.mark.parametrize("coding, encode", [
    ("", lambda b: b),
    ("gzip", lambda b: gzip.compress(b, mtime=0)),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
])
def test_json_bodies_are_decoded_and_redacted(coding, encode):
    text = redact_body(encode(orjson.dumps(DOC)), "application/json; charset=utf-8", coding,
                       policy=POLICY)
    assert orjson.loads(text) == {"id": 1, "token": REDACTED,
                                  "items": [{"api_key": REDACTED, "n": 2}], "text": "é"}


def test_text_bodies_are_redacted_as_text():
    text = redact_body(b"error: bad request, api_key=abc123 user=ada", "text/plain", "",
                       policy=POLICY)
    assert "abc123" not in text and "user=ada" in text
    # a pair right after "name:" (the value of one pair is the name of the next)
    assert redact_body(b"reason: token=abc", "text/plain", "", policy=POLICY) == (
        f"reason: token={REDACTED}")
    # malformed JSON still goes through the text redaction
    text = redact_body(b'{"password": "hunter2", ', "application/json", "", policy=POLICY)
    assert "hunter2" not in text


@pytest.mark.parametrize("data, ctype, coding, limit", [
    (b"\x89PNG....", "image/png", "", 1000),  # binary: cannot be redacted, never kept
    (b"x" * 1001, "text/plain", "", 1000),  # over the limit (cutting it would corrupt it)
    (gzip.compress(b"x" * 1001, mtime=0), "text/plain", "gzip", 1000),  # over the limit decoded
    (b"\xff\xfe bad utf-8", "text/plain", "", 1000),
    (b"{}", "application/json", "br", 1000),  # a coding driftbayes cannot decode
    (b"not gzip", "application/json", "gzip", 1000),  # corrupt coding
    (b"{}", "application/json", "", 0),  # limit 0 keeps nothing
    (b"", "application/json", "", 1000),
])
def test_bodies_that_are_not_kept(data, ctype, coding, limit):
    assert redact_body(data, ctype, coding, policy=POLICY, limit=limit) is None


def test_redaction_off_keeps_the_body():
    off = RedactionPolicy.from_config(Config.from_dict({"redact": {"enabled": False}}, warn=False))
    assert orjson.loads(redact_body(orjson.dumps(DOC), "application/json", "", policy=off)) == DOC


SPEC = {
    "components": {"schemas": {
        "User": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "integer", "minimum": 1},
            "email": {"type": "string", "format": "email"},
            "role": {"type": "string", "enum": ["admin", "user"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "score": {"type": ["number", "null"]},
            "active": {"type": "boolean"},
            "manager": {"$ref": "#/components/schemas/User"},  # recursive
        }},
        "Audit": {"type": "object", "properties": {"at": {"type": "string",
                                                          "format": "date-time"}}},
    }},
}


def test_schema_instances_follow_the_schema():
    user = schema_instance({"$ref": "#/components/schemas/User"}, SPEC)
    assert user["id"] == 1 and user["email"] == "user@example.com" and user["role"] == "admin"
    assert user["tags"] == ["string"] and user["score"] == 0.0 and user["active"] is True
    depth, node = 0, user
    while isinstance(node, dict) and node.get("manager") is not None:
        node, depth = node["manager"], depth + 1
    assert 1 <= depth <= 9  # the recursion is cut, not infinite
    n = {"type": "object", "properties": {"n": {"type": "integer"}}}
    merged = schema_instance({"allOf": [{"$ref": "#/components/schemas/Audit"}, n]}, SPEC)
    assert merged == {"at": "2024-01-01T00:00:00Z", "n": 0}
    assert schema_instance({"oneOf": [{"type": "string"}, {"type": "integer"}]}) == "string"
    assert schema_instance({"type": "integer", "example": 42}) == 42
    assert schema_instance({"$ref": "#/components/schemas/Missing"}, SPEC) is None
    assert schema_instance({"$ref": "https://elsewhere.invalid/s.json"}, SPEC) is None


def test_response_examples_win_over_schemas():
    resp = {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/User"}, "example": {"id": 99}}}}
    assert response_example(resp, SPEC) == {"id": 99}
    del resp["content"]["application/json"]["example"]
    assert response_example(resp, SPEC)["id"] == 1
    swagger2 = {"schema": {"type": "array", "items": {"type": "integer"}}}
    assert response_example(swagger2) == [0]
    assert response_example({"description": "no content"}) is None


def _batch(bodies, statuses, endpoints):
    n = len(bodies)
    b = EventBatch.from_records([{"ts": 1000.0 + i, "method": "GET", "endpoint": endpoints[i],
                                  "status": statuses[i], "latency_ms": 5.0} for i in range(n)])
    b.extra = {"response_body": np.array(bodies, dtype=object),
               "response_content_type": np.array(["application/json"] * n, dtype=object)}
    return b


def test_learner_keeps_the_latest_body_per_endpoint_and_status(tmp_path):
    learner = DriftLearner().learn_many(_batch(
        ['{"v": 1}', None, '{"v": 2}', '{"e": 1}', '{"c": 1}', '{"lost": 1}'],
        [200, 200, 200, 500, 200, 0], ["/a", "/a", "/a", "/a", "/c", "/c"]))
    assert learner.bodies_ == {("GET /a", 200): ("application/json", '{"v": 2}'),
                               ("GET /a", 500): ("application/json", '{"e": 1}'),
                               ("GET /c", 200): ("application/json", '{"c": 1}')}
    path = save_state(learner, tmp_path / "s.nc")
    assert load_state(path).bodies_ == learner.bodies_
    other = DriftLearner().learn_many(_batch(['{"d": 1}', '{"v": 9}'], [200, 200], ["/d", "/a"]))
    merged = learner + other
    assert merged.bodies_[("GET /d", 200)] == ("application/json", '{"d": 1}')
    assert merged.bodies_[("GET /a", 200)] == ("application/json", '{"v": 2}')
    learner.reset("/a")
    assert set(learner.bodies_) == {("GET /c", 200)}
    learner.reset(persona="default")  # bodies are per endpoint, not per persona
    assert set(learner.bodies_) == {("GET /c", 200)}
    learner.reset()
    assert learner.bodies_ == {}
