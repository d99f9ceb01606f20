from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from driftbayes.events import COLUMNS, BadRecordError, BadRecordReport, EventBatch
from driftbayes.io import har
from driftbayes.io.har import read_har, sniff_har
from driftbayes.io.jsonl import iso_to_epoch
from driftbayes.redact import RedactionPolicy, redaction_policy
from tests.helpers import needs_real, real_path

HAR_DIR = real_path("har-samples") or Path("har-samples")
INDEX = HAR_DIR / "index.csv"
needs_samples = needs_real("har-samples/index.csv", "har-samples")


def index_rows() -> list:
    if not INDEX.is_file():  # one skipped case that says what is missing
        return [pytest.param({"file": "index.csv"}, marks=needs_samples)]
    with open(INDEX, newline="") as f:
        return list(csv.DictReader(f))


def read_all(path, **kw) -> EventBatch:
    return EventBatch.concat(list(read_har(path, **kw)))


def entry(url="https://api.example.com/api/users/42", **over) -> dict:
    """One HAR 1.2 entry; ``over`` replaces top-level keys (``None`` deletes one)."""
    e = {
        "pageref": "page_1",
        "startedDateTime": "2024-01-01T12:00:00.000Z",
        "time": 50.5,
        "request": {
            "method": "GET",
            "url": url,
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Accept", "value": "application/json"}],
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {"status": 200, "statusText": "OK", "headers": [], "content": {}},
        "cache": {},
        "timings": {"blocked": 1, "dns": -1, "connect": -1, "ssl": -1, "send": 0.5, "wait": 48,
                    "receive": 1},
    }
    for k, v in over.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def write_har(tmp_path, entries, name="traffic.har", *, raw: bytes | None = None) -> Path:
    doc = {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"},
                   "pages": [], "entries": entries}}
    data = raw if raw is not None else orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def everything(batch: EventBatch) -> str:
    """Text of every value of every column and extra, to search for leaked secrets."""
    parts = [repr(getattr(batch, n).tolist()) for n in COLUMNS]
    parts += [repr(k) + repr(v.tolist()) for k, v in batch.extra.items()]
    return "\n".join(parts)


# ------------------------------------------------------------------------------ real recordings


@needs_samples
@pytest.mark.parametrize("row", index_rows(), ids=lambda r: r["file"])
def test_real_file_matches_index(row):
    report = BadRecordReport()
    b = read_all(HAR_DIR / row["file"], report=report)
    # every entry of every file is one event: no file is truncated and none has bad entries
    # (mitmproxy__flows_incomplete_log is complete JSON whose 4 flows got no response: status 0)
    assert report.count == 0, report.summary()
    assert len(b) == int(row["entries"])
    assert b.line.tolist() == list(range(1, len(b) + 1))
    assert set(b.status.tolist()) == {int(s) for s in row["status_codes"].split()}
    assert b.ts.min() == pytest.approx(iso_to_epoch([row["first_startedDateTime"]])[0], abs=1e-6)
    assert len(set(b.extra["host"].tolist())) == int(row["distinct_hosts"])
    assert (b.latency_ms[b.status > 0] >= 0).all()
    assert np.isnan(b.latency_ms[b.status == 0]).all()
    assert all(s.startswith("har:" + row["file"]) for s in b.session)


@needs_samples
def test_hand_read_values():
    # cnn-chrome.har, entries[0]: Chrome HAR Capturer, a 301 from http://cnn.com/
    b = read_all(HAR_DIR / "haralyzer__cnn-chrome.har.gz")
    assert b.ts[0] == pytest.approx(1510574582.550, abs=1e-6)  # 2017-11-13T12:03:02.550Z
    assert (b.method[0], b.endpoint[0], b.status[0]) == ("GET", "/", 301)
    assert b.latency_ms[0] == 111.57799995271489
    assert b.extra["host"][0] == "cnn.com"
    assert b.session[0] == b.extra["client"][0] == "har:haralyzer__cnn-chrome.har.gz#page_1"

    # firefox.har: offset -07:00, a 304 first, then cache hits with time 0 and empty timings
    b = read_all(HAR_DIR / "mitmproxy__har_files_firefox.har.gz")
    assert b.ts[0] == pytest.approx(1680134339.303, abs=1e-6)  # 2023-03-29T16:58:59.303-07:00
    assert (b.method[0], b.endpoint[0], b.status[0], b.latency_ms[0]) == ("GET", "/", 304, 23.0)
    assert (b.endpoint[1], b.status[1], b.latency_ms[1]) == ("/logo-navbar.png", 200, 0.0)

    # websocket.har (mitmproxy): 101 upgrades, the URL carries a real api_key
    b = read_all(HAR_DIR / "mitmproxy__flows_websocket.har.gz")
    assert b.ts[0] == pytest.approx(1693314200.195591, abs=1e-6)
    assert b.status.tolist() == [101, 101, 101]
    assert b.endpoint.tolist() == ["/v3/channel_123"] * 3
    assert b.latency_ms[0] == 424.1049289703369
    q = "api_key=[REDACTED]&notify_self="
    assert b.extra["query"].tolist() == [q, "", q]
    assert b.session.tolist() == ["har:mitmproxy__flows_websocket.har.gz"] * 3  # no pageref
    text = everything(b)
    assert "VCXCEuvhGcBDP7XhiJJUDvR1e1D3eiVjgZ9VRiaV" not in text
    assert set(b.extra["header:cookie"].tolist()) == {"[REDACTED]"}


@needs_samples
def test_status_zero_real():
    # incomplete_log.har: 4 mitmproxy flows without response (status 0, time 0 or ~0.001)
    b = read_all(HAR_DIR / "mitmproxy__flows_incomplete_log.har.gz")
    assert b.method.tolist() == ["GET", "GET", "POST", "POST"]
    assert b.status.tolist() == [0, 0, 0, 0]
    assert np.isnan(b.latency_ms).all()
    # chrome.har: entries[1] is a request Chrome blocked (status 0, time 4.119 ms blocked)
    b = read_all(HAR_DIR / "mitmproxy__har_files_chrome.har.gz")
    assert b.status.tolist() == [304, 0, 200]
    assert np.isnan(b.latency_ms[1]) and b.extra["host"][1] == "www.google.com"


@needs_samples
def test_duplicate_urls_and_redirects():
    b = read_all(HAR_DIR / "haralyzer__humanssuck.net_duplicate_url.har.gz")
    assert len(b) == 5
    assert b.endpoint[3] == b.endpoint[4] == "/jquery-1.7.1.min.js"
    assert b.latency_ms[3] == b.latency_ms[4] == 310.0
    b = read_all(HAR_DIR / "pagexray__redirect_www.sitespeed.io-redirecting-to-https.har.gz")
    assert b.status[:2].tolist() == [301, 200]
    assert b.endpoint[:2].tolist() == ["/", "/"]
    assert b.extra["host"][:2].tolist() == ["www.sitespeed.io", "www.sitespeed.io"]
    assert b.latency_ms[:2].tolist() == [39.0, 166.0]


@needs_samples
def test_batches_equal_one_pass():
    path = HAR_DIR / "haralyzer__cnn-chrome.har.gz"
    whole = list(read_har(path))
    parts = list(read_har(path, batch_size=7))
    assert len(whole) == 1 and len(parts) == 42
    a, b = whole[0], EventBatch.concat(parts)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert set(a.extra) == set(b.extra)
    for k in a.extra:
        assert a.extra[k].tolist() == b.extra[k].tolist(), k


@needs_samples
def test_real_headers_are_tokens_and_redacted():
    # WebPageTest writes the request line ("GET /x?y HTTP/1.1") as a header: not kept
    b = read_all(HAR_DIR / "pagexray__www.nytimes.com.har.gz")
    names = [k[len("header:"):] for k in b.extra if k.startswith("header:")]
    assert names and all(" " not in n and "?" not in n for n in names)
    cookies = {c for c in b.extra["header:cookie"].tolist() if c is not None}
    assert cookies == {"[REDACTED]"}


@needs_samples
def test_sniff_real_files():
    for path in sorted(HAR_DIR.glob("*.har.gz")):
        head = path.read_bytes()[:4096]
        assert sniff_har(head), path.name
        assert sniff_har(gzip.decompress(path.read_bytes())[:4096]), path.name


# ------------------------------------------------------------------------------ synthetic


def test_columns_of_a_small_har(tmp_path):
    path = write_har(tmp_path, [
        entry("https://API.example.com:8443/api/users/42?page=2#frag"),
        entry("http://api.example.com/api/users/7", pageref=None,
              startedDateTime="2024-01-01T13:00:01.250+01:00", time=12,
              request={"method": "post", "url": "http://api.example.com/api/users/7"}),
        entry("/api/orders", response={"status": 503}),
    ])
    b = read_all(path)
    assert b.ts.tolist() == pytest.approx([1704110400.0, 1704110401.25, 1704110400.0])
    assert b.method.tolist() == ["GET", "POST", "GET"]
    assert b.endpoint.tolist() == ["/api/users/{id}", "/api/users/{id}", "/api/orders"]
    assert b.status.tolist() == [200, 200, 503]
    assert b.latency_ms.tolist() == [50.5, 12.0, 50.5]
    assert b.persona.tolist() == ["default"] * 3
    assert b.session.tolist() == ["har:traffic.har#page_1", "har:traffic.har",
                                  "har:traffic.har#page_1"]
    assert b.extra["client"].tolist() == b.session.tolist()
    assert b.line.tolist() == [1, 2, 3]
    assert b.extra["host"].tolist() == ["api.example.com:8443", "api.example.com", ""]
    assert b.extra["query"].tolist() == ["page=2", "", ""]
    assert b.extra["header:accept"].tolist() == ["application/json", None, "application/json"]
    assert b.source == str(path)


def test_gzip_and_stdin_like_paths(tmp_path):
    plain = read_all(write_har(tmp_path, [entry(), entry()]))
    gz = read_all(write_har(tmp_path, [entry(), entry()], name="t.har.gz"))
    assert plain.ts.tolist() == gz.ts.tolist() and len(gz) == 2


def test_timings_fallback(tmp_path):
    timings = {"blocked": 2, "dns": -1, "connect": 10, "ssl": 6, "send": 0.5, "wait": 30,
               "receive": 1.5}
    path = write_har(tmp_path, [
        entry(time=None, timings=timings),  # missing time → 2 + 10 + 0.5 + 30 + 1.5 (no ssl)
        entry(time=-1, timings=timings),  # negative time → same
        entry(time=None, timings={"blocked": -1, "dns": -1, "connect": -1, "send": -1,
                                  "wait": -1, "receive": -1}),  # nothing recorded → NaN
        entry(time=None, timings=None),  # neither → NaN
        entry(time=7, timings=timings),  # time wins when valid
        entry(time=0, timings={}),  # 0 is a valid time (cache hit)
    ])
    report = BadRecordReport()
    b = read_all(path, report=report)
    assert report.count == 0
    np.testing.assert_array_equal(b.latency_ms, [44.0, 44.0, np.nan, np.nan, 7.0, 0.0])


def test_status_zero_synthetic(tmp_path):
    path = write_har(tmp_path, [
        entry(response={"status": 0}, time=250.0),  # aborted after 250 ms
        entry(response={"status": 0}, time=-1, timings=None),  # blocked, no time at all
        entry(response=None),  # no response object at all
        entry(response={"status": 204}),
    ])
    report = BadRecordReport()
    b = read_all(path, report=report)
    assert report.count == 0
    assert b.status.tolist() == [0, 0, 0, 204]
    np.testing.assert_array_equal(b.latency_ms, [np.nan, np.nan, np.nan, 50.5])
    assert b.endpoint.tolist() == ["/api/users/{id}"] * 4  # still counted for frequency/flows


def test_secrets_never_survive(tmp_path):
    secrets = ["SECRET-AUTHZ", "SECRET-COOKIE", "SECRET-QTOKEN", "SECRET-APIKEY", "SECRET-PASS",
               "SECRET-REFTOKEN", "SECRET-PSEUDO", "SECRET-XAUTH", "SECRET-SESSID", "SECRET-PW"]
    url = ("https://alice:SECRET-PASS@api.example.com/api/users/42"
           "?token=SECRET-QTOKEN&api_key=SECRET-APIKEY&sessionid=SECRET-SESSID&page=3")
    e = entry(url)
    e["request"]["headers"] = [
        {"name": "Authorization", "value": "Bearer SECRET-AUTHZ"},
        {"name": "Cookie", "value": "sid=SECRET-COOKIE"},
        {"name": "Referer", "value": "https://app.example.com/cb?access_token=SECRET-REFTOKEN"},
        {"name": ":path", "value": "/api/users/42?token=SECRET-PSEUDO"},
        {"name": "X-Auth-Token", "value": "SECRET-XAUTH"},
        {"name": "Origin", "value": "https://bob:SECRET-PW@app.example.com"},
        {"name": "User-Agent", "value": "test/1.0"},
    ]
    e["request"]["queryString"] = [{"name": "token", "value": "SECRET-QTOKEN"}]
    e["request"]["cookies"] = [{"name": "sid", "value": "SECRET-COOKIE"}]
    e["response"]["headers"] = [{"name": "Set-Cookie", "value": "sid=SECRET-COOKIE"}]
    b = read_all(write_har(tmp_path, [e, entry()]))
    text = everything(b)
    for s in secrets:
        assert s not in text, s
    assert b.extra["header:authorization"][0] == "[REDACTED]"
    assert b.extra["header:cookie"][0] == "[REDACTED]"
    assert b.extra["header:x-auth-token"][0] == "[REDACTED]"
    assert "page=3" in b.extra["query"][0]
    assert b.extra["host"][0] == "api.example.com"
    assert b.extra["user_agent"].tolist() == ["test/1.0", None]
    assert not any(k.startswith("header::") for k in b.extra)


def test_persona(tmp_path):
    with_header = entry()
    with_header["request"]["headers"].append({"name": "X-Persona", "value": "mobile"})
    mf_header = entry()
    mf_header["request"]["headers"] += [{"name": "X-Persona", "value": ""},
                                        {"name": "X-MockForge-Persona", "value": "admin"}]
    path = write_har(tmp_path, [entry(_persona="premium"), entry(persona="bot"), with_header,
                                mf_header, entry()])
    assert read_all(path).persona.tolist() == ["premium", "bot", "mobile", "admin", "default"]
    assert read_all(path, persona_field="tier").persona.tolist() == [
        "default", "default", "default", "admin", "default"]


def test_redaction_policy_is_honoured(tmp_path):
    e = entry("https://x.org/a?pin=1234&page=2")
    e["request"]["headers"].append({"name": "X-Tenant-Pin", "value": "9876"})
    path = write_har(tmp_path, [e])
    with redaction_policy(RedactionPolicy(extra_keys=("*pin",))):
        b = read_all(path)
    assert b.extra["header:x-tenant-pin"][0] == "[REDACTED]"
    assert b.extra["query"][0] == "pin=[REDACTED]&page=2"
    assert read_all(path).extra["header:x-tenant-pin"][0] == "9876"


def test_bad_entries_are_reported(tmp_path):
    path = write_har(tmp_path, [
        entry(),
        "not an entry",
        entry(request=None),
        entry(startedDateTime="yesterday"),
        entry(url=""),
        entry("data:image/png;base64,AAAA"),
        entry(request={"method": 7, "url": "https://x.org/"}),
        entry(response={"status": 42}),
        entry(time=-5, timings=None),
        entry(startedDateTime=None),
        entry(),
    ])
    report = BadRecordReport(keep=20)
    b = read_all(path, report=report)
    assert b.line.tolist() == [1, 11]
    got = [(r.line, r.field) for r in report.first]
    assert got == [
        (2, "entries[]"),
        (3, "entries[].request"),
        (4, "entries[].startedDateTime"),
        (5, "entries[].request.url"),
        (6, "entries[].request.url"),
        (7, "entries[].request.method"),
        (8, "entries[].response.status"),
        (9, "entries[].time"),
        (10, "entries[].startedDateTime"),
    ]
    assert "yesterday" in report.first[2].reason
    assert report.by_field["entries[].request.url"] == 2


def test_lenient_without_report_warns(tmp_path):
    path = write_har(tmp_path, [entry(), entry(startedDateTime="bad")])
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        assert len(read_all(path)) == 1


def test_strict_raises_with_file_and_entry(tmp_path):
    path = write_har(tmp_path, [entry(), entry(), entry(startedDateTime="not a date")])
    with pytest.raises(BadRecordError) as err:
        read_all(path, strict=True)
    assert err.value.bad.line == 3
    assert err.value.bad.field == "entries[].startedDateTime"
    assert str(path) in str(err.value) and ":3:" in str(err.value)


@pytest.mark.parametrize("name", ["cut.har", "cut.har.gz"])
def test_truncated_file_yields_what_parsed(tmp_path, name):
    full = orjson.dumps({"log": {"version": "1.2", "entries": [entry(), entry(), entry()]}})
    cut = full[: full.rindex(b'"startedDateTime"') + 10]  # inside the third entry
    path = write_har(tmp_path, [], name=name, raw=cut)
    report = BadRecordReport()
    b = read_all(path, report=report)
    assert b.line.tolist() == [1, 2]
    assert report.count == 1
    bad = report.first[0]
    assert (bad.line, bad.field) == (3, "json")
    assert "after 2 entries" in bad.reason
    with pytest.raises(BadRecordError, match=":3: field 'json'"):
        read_all(path, strict=True)


def test_invalid_json_before_any_entry(tmp_path):
    path = write_har(tmp_path, [], raw=b'{"log": {"version": "1.2", "entries": [nope')
    report = BadRecordReport()
    assert len(read_all(path, report=report)) == 0
    assert [(r.line, r.field) for r in report.first] == [(1, "json")]


def test_not_a_har(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{"hello": [1, 2, 3]}')
    report = BadRecordReport()
    assert list(read_har(path, report=report)) == []
    assert [(r.line, r.field) for r in report.first] == [(0, "log.entries")]
    with pytest.raises(BadRecordError, match="no log.entries"):
        list(read_har(path, strict=True))
    empty = write_har(tmp_path, [], name="empty.har")
    report = BadRecordReport()
    assert list(read_har(empty, report=report)) == [] and report.count == 0


def test_orjson_fallback_without_ijson(tmp_path, monkeypatch):
    path = write_har(tmp_path, [entry(), entry(response={"status": 0}), entry(time=None)])
    expected = read_all(path)
    monkeypatch.setattr(har, "ijson", None)
    got = read_all(path)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    cut = write_har(tmp_path, [], name="cut.har", raw=path.read_bytes()[:-20])
    report = BadRecordReport()
    assert list(read_har(cut, report=report)) == []  # orjson cannot stream: nothing parsed
    assert [r.field for r in report.first] == ["json"]
    monkeypatch.setattr(har, "ORJSON_MAX_BYTES", 100)
    with pytest.raises(ImportError, match="ijson"):
        read_all(path)


def test_sniff_har():
    assert sniff_har(b'{\n  "log": {\n    "version": "1.2",\n    "creator": {}')
    assert sniff_har(b'\xef\xbb\xbf {"log":{"entries":[')
    assert sniff_har(gzip.compress(b'{"log": {"creator": {"name": "x"}, "entries": []}}')[:40])
    assert not sniff_har(b'{"ts": 1, "path": "/x", "status": 200}\n')
    assert not sniff_har(b'{"log": "text", "version": 2}')
    assert not sniff_har(b"SQLite format 3\x00")
    assert not sniff_har(b"")


def test_missing_file_fails_early(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_har(tmp_path / "nope.har")
    with pytest.raises(ValueError, match="batch_size"):
        read_har(write_har(tmp_path, [entry()]), batch_size=0)


def test_response_bodies_redacted_last_per_endpoint_and_status(tmp_path):
    import base64

    from driftbayes.learner import DriftLearner

    def with_body(url, status, text, mime="application/json", **content):
        e = entry(url)
        e["response"] = {"status": status, "content": {"mimeType": mime, "text": text, **content}}
        return e

    secret = "tok-5ecret"
    entries = [
        with_body("https://api.example.com/api/users/1", 200, '{"id": 1}'),
        with_body("https://api.example.com/api/users/2", 200,
                  orjson.dumps({"id": 2, "access_token": secret}).decode()),
        with_body("https://api.example.com/api/users/3", 404, "not found: api_key=" + secret,
                  mime="text/plain; charset=utf-8"),
        with_body("https://api.example.com/logo.png", 200,
                  base64.b64encode(b"\x89PNG\r\n").decode(), mime="image/png",
                  encoding="base64"),
        with_body("https://api.example.com/api/cart", 200,
                  base64.b64encode(b'{"items": []}').decode(), encoding="base64"),
        entry("https://api.example.com/api/orders/9"),  # no content at all
    ]
    batch = read_all(write_har(tmp_path, entries))
    assert secret not in everything(batch)
    learner = DriftLearner().learn_many(batch)
    bodies = learner.bodies_
    assert set(bodies) == {("GET /api/users/{id}", 200), ("GET /api/users/{id}", 404),
                           ("GET /api/cart", 200)}
    assert orjson.loads(bodies[("GET /api/users/{id}", 200)][1]) == {
        "id": 2, "access_token": "[REDACTED]"}  # the last of the two, redacted
    assert bodies[("GET /api/users/{id}", 404)] == ("text/plain",
                                                    "not found: api_key=[REDACTED]")
    assert bodies[("GET /api/cart", 200)] == ("application/json", '{"items": []}')
