"""Secrets never get past the readers: redaction functions, the configurable policy, and planted
secrets followed through `driftbayes learn` into patterns, samples and the saved state."""

from __future__ import annotations

import sys

import numpy as np
import orjson
import pytest
import xarray as xr
from typer.testing import CliRunner

from driftbayes.cli import app
from driftbayes.redact import (
    REDACTED,
    RedactionPolicy,
    current_policy,
    is_secret_key,
    redact_headers,
    redact_json,
    redact_query,
    redact_url,
    redaction_policy,
)

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "io"))
from ingest_samples import (  # noqa: E402
    Rec,
    har_bytes,
    har_entry,
    need,
    sqlite_row,
    write_sqlite,
)

runner = CliRunner()

# ------------------------------------------------------------------------------ functions


def test_builtin_names():
    assert redact_headers({"Authorization": "Bearer x", "Accept": "*/*", "X-API-Key": "k"}) == {
        "authorization": REDACTED, "accept": "*/*", "x-api-key": REDACTED}
    assert redact_query("a=1&access_token=t&Password=p") == (
        "a=1&access_token=[REDACTED]&Password=[REDACTED]")
    assert redact_url("https://u:pw@h/p?sig=1&x=2#f") == "https://h/p?sig=[REDACTED]&x=2#f"
    assert redact_json({"user": {"name": "n", "client_secret": "s"}, "list": [{"jwt": "j"}]}) == {
        "user": {"name": "n", "client_secret": REDACTED}, "list": [{"jwt": REDACTED}]}


def test_extra_names_are_case_insensitive_globs_and_apply_everywhere():
    kw = {"extra_headers": ["X-Session-*"], "extra_keys": ["SSN", "*_pin"]}
    assert is_secret_key("x-session-id", **kw) and is_secret_key("ssn", **kw)
    assert is_secret_key("card_PIN", **kw) and not is_secret_key("pineapple", **kw)
    assert redact_headers({"X-Session-Id": "v", "ssn": "1"}, **kw) == {
        "x-session-id": REDACTED, "ssn": REDACTED}
    assert redact_query("ssn=1&card_pin=2&x=3", **kw) == (
        "ssn=[REDACTED]&card_pin=[REDACTED]&x=3")
    assert redact_json({"SSN": 1, "nested": [{"x-session-id": 2}]}, **kw) == {
        "SSN": REDACTED, "nested": [{"x-session-id": REDACTED}]}
    assert redact_url("/p?ssn=1", **kw) == "/p?ssn=[REDACTED]"
    # without the extras they pass
    assert redact_query("ssn=1") == "ssn=1"


def test_policy_context_and_disabled_policy():
    policy = RedactionPolicy(extra_keys=("ssn",))
    assert current_policy() == RedactionPolicy()
    with redaction_policy(policy):
        assert redact_query("ssn=1") == "ssn=[REDACTED]"
        assert redact_headers({"ssn": "1"}) == {"ssn": REDACTED}
    assert redact_query("ssn=1") == "ssn=1"
    off = RedactionPolicy(enabled=False)
    assert redact_headers({"Authorization": "x"}, policy=off) == {"authorization": "x"}
    assert redact_query("token=t", policy=off) == "token=t"
    assert redact_url("https://u:p@h/?token=t", policy=off) == "https://u:p@h/?token=t"
    assert redact_json({"password": "p"}, policy=off) == {"password": "p"}
    from driftbayes.config import Config

    assert RedactionPolicy.from_config(Config(redact={"extra_headers": ["X-A"]})) == \
        RedactionPolicy(extra_headers=("x-a",))


def test_readers_use_the_configured_policy(tmp_path):
    """read_events sets the config's policy while the reader runs."""
    need("driftbayes.io.har")
    from driftbayes.config import Config
    from driftbayes.events import EventBatch
    from driftbayes.io.recordings import read_events

    entry = har_entry(Rec(0, 0, 1, 200, 5), headers={"X-Internal": "v"},
                      url="https://h/a?ssn=123&x=1")
    doc, _ = har_bytes([orjson.dumps(entry)])
    (tmp_path / "a.har").write_bytes(doc)
    cfg = Config(redact={"extra_headers": ["x-internal"], "extra_keys": ["ssn"]})
    b = EventBatch.concat(list(read_events(tmp_path / "a.har", config=cfg)))
    assert b.extra["header:x-internal"].tolist() == [REDACTED]
    assert b.extra["query"].tolist() == ["ssn=[REDACTED]&x=1"]
    raw = EventBatch.concat(list(read_events(tmp_path / "a.har")))
    assert raw.extra["query"].tolist() == ["ssn=123&x=1"]


# ------------------------------------------------------------------------------ planted secrets

SECRETS = ("s3cr3t-PLANTED-bearer-9f8e", "s3cr3t-PLANTED-query-7a6b", "s3cr3t-PLANTED-body-5c4d",
           "s3cr3t-PLANTED-cookie-3e2f", "s3cr3t-PLANTED-custom-1a0b",
           "s3cr3t-PLANTED-ssn-0000")
BEARER, QUERY, BODY, COOKIE, CUSTOM, SSN = SECRETS

CONFIG = """\
drift_learning:
  update_interval: 10s
  min_samples: 1
  confidence_threshold: 0
  persona_header: X-Internal-Session
  persona_rules:
    - persona: authed
      when: {authorization: "*"}
  redact:
    extra_headers: [X-Internal-Session]
    extra_keys: [ssn]
"""


def planted_har(path, n=40):
    entries = []
    for i in range(n):
        r = Rec(i, i % 10, i % 5, 200 if i % 7 else 500, 10 + i)
        e = har_entry(
            r,
            headers={"Authorization": f"Bearer {BEARER}", "Cookie": f"sid={COOKIE}",
                     "X-Api-Key": BEARER, "X-Internal-Session": CUSTOM,
                     "Referer": f"https://h/page?token={QUERY}"},
            url=f"https://user:{BEARER}@api.example.com/api/users/{i % 5}"
                f"?api_key={QUERY}&token={QUERY}&ssn={SSN}&page=2",
        )
        e["request"]["postData"] = {"mimeType": "application/json",
                                    "text": orjson.dumps({"password": BODY,
                                                          "card": {"token": BODY}}).decode()}
        e["request"]["queryString"] = [{"name": "api_key", "value": QUERY}]
        e["request"]["cookies"] = [{"name": "sid", "value": COOKIE}]
        e["response"]["headers"] = [{"name": "Set-Cookie", "value": f"sid={COOKIE}"}]
        e["response"]["content"] = {"size": 10, "mimeType": "application/json",
                                    "text": orjson.dumps({"access_token": BODY}).decode()}
        entries.append(orjson.dumps(e))
    # a bad entry whose only problem is its URL, which carries secrets
    bad = har_entry(Rec(n, 0, 0, 200, 1), url=f"ftp://x/y?token={QUERY}&ssn={SSN}")
    entries.append(orjson.dumps(bad))
    doc, _ = har_bytes(entries)
    path.write_bytes(doc)
    return path


def planted_jsonl(path, n=40):
    lines = []
    for i in range(n):
        lines.append(orjson.dumps({
            "ts": 1_700_000_000 + 7 * i, "method": "POST",
            "path": f"/api/login/{i % 3}?token={QUERY}&ssn={SSN}", "status": 200,
            "latency_ms": 5 + i,
            "request": {"headers": {"Authorization": f"Bearer {BEARER}", "Cookie": COOKIE},
                        "body": {"password": BODY}},
            "response": {"headers": {"Set-Cookie": COOKIE}, "body": {"token": BODY}},
        }))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def planted_sqlite(path, n=40):
    rows = []
    for i in range(n):
        r = Rec(i, 0, i % 4, 200, 3 + i)
        rows.append(sqlite_row(
            r, path=f"/api/items/{i % 4}?token={QUERY}",
            query_params=orjson.dumps({"api_key": QUERY, "ssn": SSN}).decode(),
            headers=orjson.dumps({"authorization": f"Bearer {BEARER}", "cookie": COOKIE,
                                  "x-internal-session": CUSTOM, "user-agent": "ua"}).decode(),
            body=orjson.dumps({"password": BODY}).decode()))
    return write_sqlite(path, rows)


def run(*args):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def assert_clean(text: str | bytes, where: str):
    data = text.encode() if isinstance(text, str) else text
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret} leaked into {where}"
        assert b"s3cr3t-PLANTED" not in data, f"a planted secret leaked into {where}"


def strings_of(ds: xr.Dataset):
    """Every string in a Dataset: variables, coordinates and attributes (also nested)."""
    for name, var in {**ds.variables}.items():
        yield str(name)
        if var.dtype.kind in "OSU":
            yield from (str(v) for v in np.asarray(var.values).ravel())
        yield from (f"{k}={v}" for k, v in var.attrs.items())
    yield from (f"{k}={v}" for k, v in ds.attrs.items())


@pytest.mark.parametrize("kind", ["har", "jsonl", "mockforge-sqlite"])
def test_planted_secrets_never_reach_outputs(tmp_path, kind):
    if kind == "har":
        need("driftbayes.io.har")
        rec = planted_har(tmp_path / "traffic.har")
    elif kind == "jsonl":
        rec = planted_jsonl(tmp_path / "traffic.jsonl")
    else:
        need("driftbayes.io.mockforge_sqlite")
        rec = planted_sqlite(tmp_path / "traffic.db")
    assert any(s.encode() in rec.read_bytes() for s in SECRETS)  # really planted
    (tmp_path / "driftbayes.yaml").write_text(CONFIG)
    state = tmp_path / "state.nc"
    learned = run("learn", rec, "--config", tmp_path / "driftbayes.yaml", "--state", state,
                  "--no-progress")
    assert_clean(learned.output, "learn output")
    patterns = run("patterns", "--state", state, "--format", "json")
    rows = orjson.loads(patterns.stdout)
    assert rows and {r["persona"] for r in rows} <= {"authed", "default"}
    assert_clean(patterns.output, "patterns --format json")
    assert_clean(run("patterns", "--state", state).output, "patterns table")
    assert_clean(run("sample", "--state", state, "-n", "200", "--seed", "1").output, "sample")
    assert_clean(run("sample", "--state", state, "--sessions", "5", "--seed", "2").output,
                 "sample --sessions")
    assert_clean(state.read_bytes(), "the state file bytes")
    with xr.open_dataset(state, engine="h5netcdf") as ds:
        texts = list(strings_of(ds.load()))
    assert any("/api/" in t for t in texts)  # the walk does see the endpoints
    assert_clean("\n".join(texts), "the state's variables and attributes")
    if kind == "har":  # the header rule saw only the redacted Authorization value
        assert {r["persona"] for r in rows} == {"authed"}


def test_redact_text():
    from driftbayes.redact import redact_text

    assert redact_text("does not match: 'GET /a?token=abc&x=1 HTTP/1.1'") == (
        "does not match: 'GET /a?token=[REDACTED]&x=1 HTTP/1.1'")
    assert redact_text('{"password": "hunter 2", "name": "bob"}') == (
        '{"password": "[REDACTED]", "name": "bob"}')
    assert redact_text("got 'ftp://u:pw@h/p'") == "got 'ftp://h/p'"
    assert "abc.def" not in redact_text("Authorization: Bearer abc.def")
    assert redact_text("ratio=3 path=/a time: 12:30") == "ratio=3 path=/a time: 12:30"
    assert redact_text("ssn=1", extra_keys=["ssn"]) == "ssn=[REDACTED]"
    assert redact_text("token=1", policy=RedactionPolicy(enabled=False)) == "token=1"


def test_bad_record_reasons_are_redacted(tmp_path):
    """Readers quote bad input in their reasons; read_events redacts them (report, strict
    error and the end-of-file warning)."""
    need("driftbayes.io.accesslog")
    from driftbayes.events import BadRecordError, BadRecordReport
    from driftbayes.io.recordings import read_events

    p = tmp_path / "a.log"
    p.write_text('1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 1 "-" "ua"\n'
                 f"garbage /a?token={QUERY}&api_key={QUERY} here\n")
    report = BadRecordReport()
    list(read_events(p, fmt="combined", report=report))
    assert report.count == 1 and QUERY not in report.summary()
    assert "token=[REDACTED]" in report.summary()
    with pytest.raises(BadRecordError) as info:
        list(read_events(p, fmt="combined", strict=True))
    assert QUERY not in str(info.value) and QUERY not in info.value.bad.reason
    with pytest.warns(UserWarning) as caught:
        list(read_events(p, fmt="combined"))
    assert all(QUERY not in str(w.message) for w in caught)
