"""Enrichment: sessions cut across batches, persona precedence, OpenAPI endpoints, redaction,
and the config keys that drive them."""

from __future__ import annotations

import numpy as np
import pytest
from ingest_samples import as_array

from driftbayes.config import Config, ConfigError, get_key, load_config, set_key
from driftbayes.events import EventBatch
from driftbayes.io.enrich import Enricher, cut_sessions, load_persona_map
from driftbayes.learner import DriftLearner
from driftbayes.redact import REDACTED, hash_session
from driftbayes.templates import OpenApiTemplates


def batch(ts, *, endpoint="/a", persona=None, session=None, **extra) -> EventBatch:
    n = len(ts)
    b = EventBatch(
        ts=np.asarray(ts, dtype=float),
        method=np.full(n, "GET", dtype=object),
        endpoint=as_array(endpoint if isinstance(endpoint, list) else [endpoint] * n),
        status=np.full(n, 200),
        latency_ms=np.full(n, 10.0),
        persona=as_array(persona or ["default"] * n),
        session=as_array(session or [""] * n),
        line=np.arange(1, n + 1),
        extra={k: as_array(v) for k, v in extra.items()},
    )
    return b


# ------------------------------------------------------------------------------ sessions

# A hand-made stream: clients a and b interleaved, gaps of 30 min = 1800 s (not a break: the
# gap must be *longer*), 1801 s (a break) and an out-of-order event, split in three batches.
STREAM = [
    # (ts, client)
    (0, "a"), (10, "b"), (100, "a"),            # batch 1
    (1900, "a"), (1910, "b"), (3711, "b"),      # batch 2: a +1800 (same), b +1900 (new), b +1801
    (3700, "a"), (3650, "c"), (3600, "a"),      # batch 3: a +1800 (same), late a (same)
]
EXPECTED = ["a#1", "b#1", "a#1",
            "a#1", "b#2", "b#3",
            "a#1", "c#1", "a#1"]


def test_sessions_exact_ids_across_batches_and_gaps():
    e = Enricher(Config(session_gap=1800))
    out = []
    for lo, hi in [(0, 3), (3, 6), (6, 9)]:
        ts, client = zip(*STREAM[lo:hi])
        out += e(batch(ts, client=client)).session.tolist()
    assert out == EXPECTED
    assert e.session_count == {"a": 1, "b": 3, "c": 1}
    assert e.last_seen == {"a": 3700.0, "b": 3711.0, "c": 3650.0}


@pytest.mark.parametrize("cuts", [[], [1], [4, 5], [1, 2, 3, 4, 5, 6, 7, 8]])
def test_sessions_do_not_depend_on_batch_boundaries(cuts):
    ts, client = zip(*STREAM)
    e = Enricher(Config(session_gap=1800))
    out = []
    for lo, hi in zip([0, *cuts], [*cuts, len(STREAM)]):
        out += e(batch(ts[lo:hi], client=client[lo:hi])).session.tolist()
    assert out == EXPECTED


def test_sessions_continue_across_files(tmp_path):
    from ingest_samples import LINE_FORMATS, Rec, need, write_lines

    from driftbayes.io.recordings import read_events

    spec = LINE_FORMATS["combined"]
    need(spec.module)
    a = write_lines(tmp_path / "a.log", spec, [Rec(0, 0, 1, 200, 1), Rec(10, 0, 2, 200, 1)])
    b = write_lines(tmp_path / "b.log", spec, [Rec(20, 0, 3, 200, 1), Rec(500, 0, 4, 200, 1)])
    e = Enricher(Config(session_gap=1800))
    got = [s for f in (a, b) for bt in read_events(f, enricher=e) for s in bt.session]
    client = "10.0.0.1 Mozilla/5.0 (test)"
    assert got == [f"{client}#1"] * 3 + [f"{client}#2"]  # 4,800 s after the third: new


def test_cut_sessions_gap_is_strictly_longer():
    keys = as_array(["k", "k", "k"])
    assert cut_sessions(keys, np.array([0, 60, 120.0]), 60).tolist() == ["k#1"] * 3
    assert cut_sessions(keys, np.array([0, 61, 122.0]), 60).tolist() == ["k#1", "k#2", "k#3"]


def test_explicit_sessions_are_kept_and_keys_chosen():
    b = batch([0, 1, 2, 3], session=["s1", "", "", ""], client=["c", "c", None, ""],
              user=["u", "u", "u", "u"], trace=["t1", "t2", "t3", "t4"])
    s1 = hash_session("s1")  # a given session id is kept, stored hashed
    assert s1 != "s1" and s1.startswith("s-")
    assert Enricher(Config()).enrich(b).session.tolist() == [s1, "c#1", "u#1", "u#1"]
    assert Enricher(Config(session_key="client")).enrich(b).session.tolist() == [
        s1, "c#1", "", ""]
    assert Enricher(Config(session_key="user")).enrich(b).session.tolist() == [
        s1, "u#1", "u#1", "u#1"]
    assert Enricher(Config(session_key="trace")).enrich(b).session.tolist() == [
        s1, "t2#1", "t3#1", "t4#1"]
    unhashed = Config(redact={"hash_sessions": False})
    assert Enricher(unhashed).enrich(b).session.tolist()[0] == "s1"
    assert Enricher(Config(session_key="none")).enrich(b).session.tolist() == [s1, "", "", ""]
    only_trace = batch([0, 1], trace=["t", "t"])
    assert Enricher(Config()).enrich(only_trace).session.tolist() == ["", ""]  # auto ≠ trace


def test_enrich_does_not_modify_its_input():
    b = batch([0, 1], client=["c", "c"], **{"header:x-persona": ["p", "p"]})
    Enricher(Config()).enrich(b)
    assert b.session.tolist() == ["", ""] and b.persona.tolist() == ["default", "default"]


def test_resume_from_learner_continues_numbering():
    ts, client = zip(*STREAM)
    one = Enricher(Config(session_gap=1800))
    whole = one(batch(ts, client=client))
    learner = DriftLearner(Config(session_gap=1800))
    first = Enricher(Config(session_gap=1800))(batch(ts[:5], client=client[:5]))
    learner.learn_many(first)
    resumed = Enricher(Config(session_gap=1800)).resume_from(learner)
    rest = resumed(batch(ts[5:], client=client[5:]))
    assert first.session.tolist() + rest.session.tolist() == whole.session.tolist()


# ------------------------------------------------------------------------------ personas


def test_persona_precedence_field_header_map_rules_default(tmp_path):
    pmap = tmp_path / "personas.yaml"
    pmap.write_text("alice: premium\n10.0.0.9: partner\n")
    cfg = Config(persona_map=str(pmap), persona_rules=[
        {"persona": "mobile", "when": {"user_agent": "*Mobile*"}},
        {"persona": "admin", "when": {"path": "/admin/*"}},
    ])
    b = batch(
        [0] * 7,
        endpoint=["/x", "/x", "/x", "/x", "/x", "/admin/users/{id}", "/x"],
        persona=["field", "default", "default", "default", "default", "default", "default"],
        **{"header:x-persona": ["hdr", "hdr", None, None, None, None, REDACTED],
           "user": ["alice", "alice", "alice", None, None, None, None],
           "client": ["10.0.0.9", None, None, "10.0.0.9", "1.1.1.1", "1.1.1.1", "2.2.2.2"],
           "user_agent": ["Mobile", "Mobile", "Mobile", "Mobile", "iPhone Mobile Safari",
                          "curl", "curl"]},
    )
    got = Enricher(cfg).enrich(b).persona.tolist()
    assert got == ["field", "hdr", "premium", "partner", "mobile", "admin", "default"]


def test_persona_header_is_configurable_and_redacted_values_ignored():
    b = batch([0, 1], **{"header:x-tier": ["gold", REDACTED]})
    assert Enricher(Config(persona_header="X-Tier")).enrich(b).persona.tolist() == [
        "gold", "default"]
    assert Enricher(Config()).enrich(b).persona.tolist() == ["default", "default"]


def test_persona_rules_conditions_all_match_first_rule_wins():
    rules = [
        {"persona": "bot", "when": {"user_agent": "re:(?i)bot|crawler"}},
        {"persona": "api-admin", "when": {"path": "/admin/*", "method": "DELETE"}},
        {"persona": "tenant", "when": {"X-Tenant": "acme*"}},  # a header name
        {"persona": "v2", "when": {"header:x-api-version": "2"}},
        {"persona": "server-error", "when": {"status": "5??"}},
        {"persona": "svc", "when": {"service": "re:^pay"}},
    ]
    b = batch([0] * 7, endpoint=["/x", "/admin/x", "/admin/x", "/x", "/x", "/x", "/x"],
              user_agent=["GoogleBot/2", "a", "a", "a", "a", "a", "a"],
              service=[None, None, None, None, None, None, "payments"],
              **{"header:x-tenant": [None, None, None, "acme-eu", None, None, None],
                 "header:x-api-version": [None, None, None, None, "2", None, None]})
    b.method[2] = "DELETE"
    b.status[5] = 503
    got = Enricher(Config(persona_rules=rules)).enrich(b).persona.tolist()
    assert got == ["bot", "default", "api-admin", "tenant", "v2", "server-error", "svc"]


def test_persona_rule_path_prefers_raw_path():
    b = batch([0, 1], endpoint=["/users/{id}", "/users/{id}"], path=["/users/42", None])
    cfg = Config(persona_rules=[{"persona": "the-answer", "when": {"path": "/users/42"}}])
    assert Enricher(cfg).enrich(b).persona.tolist() == ["the-answer", "default"]


def test_persona_map_formats(tmp_path):
    (tmp_path / "a.yaml").write_text("personas:\n  premium: [u1, u2]\n  basic: [u3]\n")
    assert load_persona_map(tmp_path / "a.yaml") == {"u1": "premium", "u2": "premium",
                                                     "u3": "basic"}
    (tmp_path / "b.json").write_text('{"u1": "premium", "42": "basic"}')
    assert load_persona_map(tmp_path / "b.json") == {"u1": "premium", "42": "basic"}
    (tmp_path / "c.csv").write_text("segment,user,persona\nx,u1,premium\ny,u2,basic\n")
    assert load_persona_map(tmp_path / "c.csv") == {"u1": "premium", "u2": "basic"}
    (tmp_path / "d.csv").write_text("client_ip,tier\n1.2.3.4,gold\n")
    assert load_persona_map(tmp_path / "d.csv") == {"1.2.3.4": "gold"}
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="bad.yaml: persona_map must be a mapping"):
        load_persona_map(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        Enricher(Config(persona_map=str(tmp_path / "nope.yaml")))


def test_persona_map_relative_to_config_file(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "map.yaml").write_text("u1: premium\n")
    (tmp_path / "conf" / "driftbayes.yaml").write_text(
        "drift_learning:\n  persona_map: map.yaml\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tmp_path / "conf" / "driftbayes.yaml")
    assert Enricher(cfg).persona_map == {"u1": "premium"}


# ------------------------------------------------------------------------------ OpenAPI


SPEC = """\
openapi: 3.0.3
servers:
  - url: https://api.example.com/v1
paths:
  /users/{userId}:
    get: {}
  /users/me:
    get: {}
"""


def test_openapi_templates_from_raw_path_or_endpoint(tmp_path):
    spec = tmp_path / "openapi.yaml"
    spec.write_text(SPEC)
    e = Enricher(Config(), openapi=spec)
    b = batch([0, 1, 2, 3], endpoint=["/v1/users/{id}", "/v1/users/me", "/v1/users/{id}",
                                      "/health"],
              path=[None, None, "/v1/users/me", None])
    assert e.enrich(b).endpoint.tolist() == ["/v1/users/{userId}", "/v1/users/me",
                                             "/v1/users/me", "/health"]
    assert isinstance(e.openapi, OpenApiTemplates)


# ------------------------------------------------------------------------------ redaction


def test_enrich_redacts_extras_with_configured_names():
    cfg = Config(redact={"extra_headers": ["X-Session-*"], "extra_keys": ["ssn"]})
    b = batch([0, 1], query=["ssn=123-45&x=1", None], path=["/a", "https://u:pw@h/a?token=t"],
              **{"header:x-session-id": ["s3cr3t", None], "header:accept": ["*/*", "*/*"],
                 "header:authorization": ["Bearer abc", None]})
    out = Enricher(cfg).enrich(b).extra
    assert out["header:x-session-id"].tolist() == [REDACTED, None]
    assert out["header:authorization"].tolist() == [REDACTED, None]
    assert out["header:accept"].tolist() == ["*/*", "*/*"]
    assert out["query"].tolist() == ["ssn=[REDACTED]&x=1", None]
    assert out["path"].tolist() == ["/a", "https://h/a?token=[REDACTED]"]
    off = Enricher(Config(redact={"enabled": False})).enrich(b).extra
    assert off["header:authorization"][0] == "Bearer abc"


# ------------------------------------------------------------------------------ config keys


def test_new_config_keys_defaults_and_round_trip(tmp_path):
    cfg = Config()
    assert (cfg.session_key, cfg.persona_map, cfg.persona_rules) == ("auto", None, ())
    assert (cfg.redact.enabled, cfg.redact.extra_headers, cfg.redact.extra_keys) == (
        True, (), ())
    cfg = Config(session_key="user", persona_map="m.csv",
                 persona_rules=[{"persona": "m", "when": {"user_agent": "*Mobile*"}}],
                 redact={"extra_headers": ["X-A"], "extra_keys": ["pin"]})
    d = cfg.to_dict()
    assert d["persona_rules"] == [{"persona": "m", "when": {"user_agent": "*Mobile*"}}]
    assert d["redact"] == {"enabled": True, "extra_headers": ["X-A"], "extra_keys": ["pin"],
                           "disable": [], "hash_sessions": True, "entropy_min_length": 24,
                           "entropy_threshold": 0.83}
    assert Config.from_dict(d) == cfg
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_new_config_keys_validation_names_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("""\
drift_learning:
  session_key: ip
  persona_map: 3
  persona_rules:
    - persona: mobile
      when: {user_agent: "*Mobile*"}
    - persona: broken
      when: {path: "re:(("}
    - {when: {path: /x}}
  redact:
    enabled: maybe
    extra_header: [x]
""")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    errors = info.value.errors
    assert any(":2: drift_learning.session_key: 'ip' is not one of auto, client" in e
               for e in errors)
    assert any(":3: drift_learning.persona_map: expected a file path or null" in e
               for e in errors)
    assert any(":8: drift_learning.persona_rules: rule 2: when.path: invalid regular "
               "expression" in e for e in errors)  # the line of the pattern itself
    assert any(":9: drift_learning.persona_rules: rule 3: persona: required" in e
               for e in errors)
    assert any(":11: drift_learning.redact.enabled: expected true or false" in e for e in errors)
    assert any(":12: unknown key 'drift_learning.redact.extra_header'; did you mean "
               "'extra_headers'?" in e for e in errors)
    with pytest.raises(ConfigError, match="rule 1: unknown key 'persona_name'"):
        Config(persona_rules=[{"persona_name": "x", "when": {"a": "b"}}])
    with pytest.raises(ConfigError, match="unknown key 'drift_learning.redact.nope'"):
        Config(redact={"nope": 1})


def test_new_config_keys_get_and_set(tmp_path):
    path = tmp_path / "c.yaml"
    set_key(path, "redact.extra_headers", "X-Session")
    assert get_key(path, "redact.extra_headers") == ["X-Session"]
    set_key(path, "drift_learning.redact.extra_keys", '["ssn", "*_pin"]')
    set_key(path, "redact.enabled", "false")
    assert load_config(path).redact.extra_keys == ("ssn", "*_pin")
    assert get_key(path, "redact") == {"enabled": False, "extra_headers": ["X-Session"],
                                       "extra_keys": ["ssn", "*_pin"], "disable": [],
                                       "hash_sessions": True, "entropy_min_length": 24,
                                       "entropy_threshold": 0.83}
    set_key(path, "session_key", "user")
    set_key(path, "persona_map", "personas.csv")
    assert get_key(path, "persona_map") == "personas.csv"
    set_key(path, "persona_map", "null")
    assert get_key(path, "persona_map") is None
    set_key(path, "persona_rules", '[{"persona": "m", "when": {"user_agent": "*Mobile*"}}]')
    assert load_config(path).persona_rules == ({"persona": "m",
                                                "when": {"user_agent": "*Mobile*"}},)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="redact.extra_keys: expected a list"):
        set_key(path, "redact.extra_keys", "{a: 1}")
    with pytest.raises(ConfigError, match="unknown key 'drift_learning.redact.extra'"):
        set_key(path, "redact.extra", "x")
    assert path.read_bytes() == before
