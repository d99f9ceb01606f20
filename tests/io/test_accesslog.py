from __future__ import annotations

import gzip
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from driftbayes.events import COLUMNS, BadRecordError, BadRecordReport, EventBatch
from driftbayes.io.accesslog import (
    LOG_FORMATS,
    clf_to_epoch,
    compile_log_format,
    read_access_log,
    sniff_access_log,
)
from tests.helpers import SHIPPED_REAL, real_path

NASA_REL = "nasa-http-1995-08-01/nasa_19950801.tsv.gz"
APACHE_REL = "elastic-apache-semicomplete/apache_logs.gz"
# both are shipped under tests/data/real (their licences allow it), so these tests always run
NASA = real_path(NASA_REL) or SHIPPED_REAL / NASA_REL
APACHE = real_path(APACHE_REL) or SHIPPED_REAL / APACHE_REL

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/99.0"
T0 = 1431857103  # 17/May/2015:10:05:03 +0000
CLF = '{ip} - {user} [17/May/2015:10:05:03 +0000] "{req}" {status} 512'
COMBINED = CLF + ' "{ref}" "{ua}"'


def line(req="GET /api/users/42 HTTP/1.1", status=200, ip="10.0.0.1", user="-", ref="-", ua=UA,
         tail="", common=False):
    fmt = CLF if common else COMBINED
    return fmt.format(ip=ip, user=user, req=req, status=status, ref=ref, ua=ua) + tail


def write(tmp_path, lines, name="access.log"):
    data = "\n".join(lines).encode() + b"\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def read_all(path, **kw) -> EventBatch:
    return EventBatch.concat(list(read_access_log(path, **kw)))


def all_text(b: EventBatch) -> str:
    """Every string value of every column and extra, for secret checks."""
    parts = [str(v) for name in COLUMNS for v in getattr(b, name)]
    parts += [str(v) for col in b.extra.values() for v in col]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# real samples


def test_nasa_tsv_real_sample():
    with gzip.open(NASA, "rt") as f:
        header, *data = f.read().splitlines()
    assert header.startswith("host\tlogname\ttime")
    assert len(data) == 30969  # the README's count; `zcat | wc -l` = 30,970 with the header
    report = BadRecordReport()
    b = read_all(NASA, report=report)
    assert report.count == 0
    assert len(b) == len(data)
    assert (b.ts[0], b.method[0], b.endpoint[0], b.status[0]) == (
        807256800.0, "GET", "/images/launch-logo.gif", 200)
    assert b.extra["client"][0] == "pppa006.compuserve.com"
    assert b.line[0] == 2 and b.line[-1] == len(data) + 1
    assert np.isnan(b.latency_ms).all()
    assert sorted(set(b.status.tolist())) == [200, 302, 304, 404]
    statuses = pd.Series(b.status).value_counts().to_dict()
    assert statuses == {200: 27972, 304: 2421, 302: 355, 404: 221}  # SOURCE.md
    assert pd.Series(b.method).value_counts().to_dict() == {"GET": 30873, "HEAD": 95, "POST": 1}
    assert len(set(b.extra["client"])) == 2365
    assert b.ts.min() == 807256800 and b.ts.max() == 807303121  # 06:00:00 → 18:52:01 UTC
    assert set(b.persona) == {"default"} and set(b.session) == {""}
    with open(NASA, "rb") as f:
        assert sniff_access_log(f.read(4096)) == "nasa-tsv"


def test_apache_combined_real_sample():
    with gzip.open(APACHE, "rt") as f:
        lines = f.read().splitlines()
    assert len(lines) == 10000
    report = BadRecordReport()
    b = read_all(APACHE, report=report)
    # 9,999 events: line 8,899 is cut inside its user agent (no closing quote), so it does not
    # match the combined format (SOURCE.md: "9,999 match the combined-log regex").
    assert len(b) == 9999
    assert report.count == 1 and report.first[0].line == 8899
    assert report.first[0].field == "line"
    assert not lines[8898].endswith('"')
    ua = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 "
          "(KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36")
    assert b.ts[0] == 1431857103.0
    assert b.ts[0] == datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC).timestamp()
    assert b.method[0] == "GET" and b.status[0] == 200
    assert b.endpoint[0] == "/presentations/logstash-monitorama-2013/images/kibana-search.png"
    assert b.extra["user_agent"][0] == ua
    assert b.extra["client"][0] == "83.149.9.216 " + ua
    assert b.extra["referer"][0] == "http://semicomplete.com/presentations/logstash-monitorama-2013/"
    assert b.extra["user"][0] is None
    assert np.isnan(b.latency_ms).all()
    statuses = pd.Series(b.status).value_counts().to_dict()
    assert statuses == {200: 9125, 304: 445, 404: 213, 301: 164, 206: 45, 500: 3, 403: 2, 416: 2}
    assert len(set(b.extra["client"])) == 1861  # IP + user-agent pairs, as in SOURCE.md
    assert b.line[0] == 1 and 8899 not in b.line
    with open(APACHE, "rb") as f:
        assert sniff_access_log(f.read(1 << 14)) == "combined"


# --------------------------------------------------------------------------------------------
# response time detection


def test_nginx_request_time_last_field_is_seconds(tmp_path):
    path = write(tmp_path, [line(tail=" 0.123"), line(tail=" 2.5"), line(tail=" 0.000")])
    b = read_all(path)
    np.testing.assert_allclose(b.latency_ms, [123.0, 2500.0, 0.0])


def test_apache_d_last_field_is_microseconds(tmp_path):
    path = write(tmp_path, [line(tail=" 123456"), line(tail=" 7"), line(common=True, tail=" 1500")])
    b = read_all(path)
    np.testing.assert_allclose(b.latency_ms, [123.456, 0.007, 1.5])


def test_response_time_after_extra_fields_and_absent(tmp_path):
    path = write(
        tmp_path,
        [
            line(tail=' "203.0.113.9" 0.050'),  # nginx "main" + $http_x_forwarded_for + time
            line(tail=' "-"'),  # extra field, no time
            line(tail=" -"),  # time not recorded
            line(),  # plain combined
            line(common=True),  # plain common
        ],
    )
    report = BadRecordReport()
    b = read_all(path, report=report)
    assert report.count == 0
    assert b.latency_ms[0] == pytest.approx(50.0)
    assert np.isnan(b.latency_ms[1:]).all()
    assert b.extra["user_agent"].tolist() == [UA, UA, UA, UA, None]
    assert b.extra["client"][-1] == "10.0.0.1"


def test_combined_rt_preset_requires_the_time(tmp_path):
    path = write(tmp_path, [line(tail=" 0.2"), line()])
    report = BadRecordReport()
    b = read_all(path, log_format="combined_rt", report=report)
    assert b.latency_ms.tolist() == [200.0]
    assert report.first[0].line == 2 and report.first[0].field == "line"


def test_strict_presets(tmp_path):
    path = write(tmp_path, [line(common=True), line()])
    report = BadRecordReport()
    assert read_all(path, log_format="common", report=report).line.tolist() == [1]
    assert [b.line for b in report.first] == [2]
    report = BadRecordReport()
    assert read_all(path, log_format="combined", report=report).line.tolist() == [2]
    assert [b.line for b in report.first] == [1]


# --------------------------------------------------------------------------------------------
# custom formats


NGINX_FMT = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
             '"$http_referer" "$http_user_agent" $request_time')


def test_nginx_log_format_string(tmp_path):
    path = write(tmp_path, [line(tail=" 0.031", user="alice")])
    b = read_all(path, log_format=NGINX_FMT)
    assert b.latency_ms[0] == pytest.approx(31.0)
    assert b.ts[0] == T0 and b.endpoint[0] == "/api/users/{id}" and b.status[0] == 200
    assert b.extra["user"][0] == "alice"
    assert b.extra["client"][0] == "10.0.0.1 " + UA


def test_nginx_custom_layout(tmp_path):
    fmt = ('$time_iso8601 $remote_addr "$request_method" $request_uri $status '
           'rt=$request_time ua="$http_user_agent" xff="$http_x_forwarded_for"')
    lines = [
        '2024-03-01T12:00:00+01:00 192.0.2.7 "post" /api/orders/7?page=2 201 rt=0.250 '
        'ua="curl/8.0" xff="-"',
        '2024-03-01T11:00:01Z 192.0.2.8 "GET" /api/orders/ 404 rt=- ua="-" xff="1.2.3.4"',
    ]
    report = BadRecordReport()
    b = read_all(write(tmp_path, lines), log_format=fmt, report=report)
    assert report.count == 0
    assert b.ts.tolist() == [1709290800.0, 1709290801.0]
    assert b.method.tolist() == ["POST", "GET"]
    assert b.endpoint.tolist() == ["/api/orders/{id}", "/api/orders"]
    assert b.status.tolist() == [201, 404]
    assert b.latency_ms[0] == pytest.approx(250.0) and np.isnan(b.latency_ms[1])
    assert b.extra["query"].tolist() == ["page=2", None]
    assert b.extra["client"].tolist() == ["192.0.2.7 curl/8.0", "192.0.2.8"]


def test_apache_logformat_string_with_d(tmp_path):
    path = write(tmp_path, [line(common=True, tail=" 4321")])
    b = read_all(path, log_format=r"%h %l %u %t \"%r\" %>s %b %D")
    assert b.latency_ms[0] == pytest.approx(4.321)
    assert b.ts[0] == T0 and b.method[0] == "GET" and b.status[0] == 200
    # the same string with plain quotes is the same format
    b2 = read_all(path, log_format='%h %l %u %t "%r" %>s %b %D')
    assert b2.latency_ms[0] == b.latency_ms[0]


def test_apache_custom_layout(tmp_path):
    fmt = '%{sec}t %a %m %U%q %>s %{ms}T "%{User-Agent}i" "%{Referer}i" %v'
    lines = [
        '1700000000 198.51.100.4 DELETE /api/carts/9f8e7d6c5b4a39281706f5e4d3c2b1a0?x=1 204 17 '
        '"okhttp/4" "-" api.example.com',
    ]
    b = read_all(write(tmp_path, lines), log_format=fmt)
    assert b.ts.tolist() == [1700000000.0]
    assert b.method.tolist() == ["DELETE"]
    assert b.endpoint.tolist() == ["/api/carts/{hash}"]
    assert b.latency_ms.tolist() == [17.0]
    assert b.extra["query"].tolist() == ["x=1"]
    assert b.extra["client"].tolist() == ["198.51.100.4 okhttp/4"]
    assert b.extra["referer"].tolist() == [None]


def test_compiled_formats_have_canonical_groups():
    groups = set(compile_log_format(NGINX_FMT).groupindex)
    assert {"ip", "user", "ts_clf", "request", "status", "referer", "user_agent", "rt_s"} <= groups
    apache = compile_log_format(r"%h %l %u %t \"%r\" %>s %b %D")
    assert {"ip", "ts_clf", "request", "status", "rt_us"} <= set(apache.groupindex)
    assert compile_log_format("combined").pattern == LOG_FORMATS["combined"]


def test_bad_log_format_fails_at_call(tmp_path):
    path = write(tmp_path, [line()])
    with pytest.raises(ValueError, match="unknown log_format"):
        read_access_log(path, log_format="apache2")
    with pytest.raises(ValueError, match="no request line"):
        read_access_log(path, log_format="$remote_addr $status")
    with pytest.raises(ValueError, match="unsupported Apache time"):
        read_access_log(path, log_format='%h %{%d/%b/%Y}t "%r"')
    with pytest.raises(FileNotFoundError):
        read_access_log(tmp_path / "missing.log")


# --------------------------------------------------------------------------------------------
# bad lines


def bad_file(tmp_path, name="access.log"):
    return write(
        tmp_path,
        [
            line(),  # 1 ok
            line(req="-", status=400),  # 2 request "-"
            "",  # 3 blank: skipped silently
            line(req="GET", status=400),  # 4 request without target
            "this is not an access log line",  # 5 no match
            line().replace("17/May/2015", "32/Foo/2015"),  # 6 bad time
            line(status=999),  # 7 bad status
            line(req="\\x16\\x03\\x01\\x00", status=400),  # 8 TLS bytes sent to an HTTP port
            line(req="get /ok HTTP/1.0"),  # 9 ok (method upper-cased)
        ],
        name,
    )


EXPECTED_BAD = [(2, "request"), (4, "request"), (5, "line"), (6, "ts"), (7, "status"),
                (8, "request")]


def test_bad_lines_lenient(tmp_path):
    report = BadRecordReport(keep=10)
    b = read_all(bad_file(tmp_path), report=report)
    assert b.line.tolist() == [1, 9]
    assert b.method.tolist() == ["GET", "GET"]
    assert [(r.line, r.field) for r in report.first] == EXPECTED_BAD
    assert report.count == len(EXPECTED_BAD)
    assert "'-'" in report.first[0].reason


def test_bad_lines_strict_raise_with_location(tmp_path):
    path = bad_file(tmp_path)
    with pytest.raises(BadRecordError, match=r"access\.log:2: field 'request'") as info:
        read_all(path, strict=True)
    assert info.value.bad.line == 2


def test_bad_lines_gzip_small_batches_same(tmp_path):
    report = BadRecordReport(keep=10)
    b = read_all(bad_file(tmp_path, "access.log.gz"), report=report, batch_size=2)
    assert b.line.tolist() == [1, 9]
    assert [(r.line, r.field) for r in report.first] == EXPECTED_BAD


def test_lenient_without_report_warns(tmp_path):
    with pytest.warns(UserWarning, match="skipped 6 bad record"):
        read_all(bad_file(tmp_path))


# --------------------------------------------------------------------------------------------
# secrets, targets, encodings


def test_token_never_reaches_any_column(tmp_path):
    path = write(
        tmp_path,
        [
            line(req="GET /api/users/42?token=secret&page=3 HTTP/1.1",
                 ref="https://app.example.com/login?token=secret&next=/home"),
            line(req="GET https://bob:hunter2@api.example.com/api/a?api_key=secret HTTP/1.1"),
        ],
    )
    b = read_all(path)
    text = all_text(b)
    assert "secret" not in text and "hunter2" not in text
    assert b.extra["query"].tolist() == ["token=[REDACTED]&page=3", "api_key=[REDACTED]"]
    assert b.endpoint.tolist() == ["/api/users/{id}", "/api/a"]
    assert b.extra["referer"][0].startswith("https://app.example.com/login?token=[REDACTED]")
    nasa_line = "h1\t-\t807256800\tGET\t/cgi?password=secret\t200\t10\t\t"
    b = read_all(write(tmp_path, [nasa_line], "n.tsv"), log_format="nasa-tsv")
    assert "secret" not in all_text(b)


def test_request_targets(tmp_path):
    path = write(
        tmp_path,
        [
            line(req="GET /"),  # HTTP/0.9: no protocol
            line(req="GET / HTTP/1.1"),  # one-character target: the protocol is not part of it
            line(req="OPTIONS * HTTP/1.1"),
            line(req="GET http://example.com/a/7?x=1 HTTP/1.1"),  # proxy request
            line(req='GET /q/\\"x\\" HTTP/1.1'),  # escaped quote inside the request
        ],
    )
    report = BadRecordReport()
    b = read_all(path, report=report)
    assert report.count == 0
    assert b.endpoint.tolist() == ["/", "/", "/*", "/a/{id}", '/q/\\"x\\"']
    assert b.method.tolist() == ["GET", "GET", "OPTIONS", "GET", "GET"]


def test_non_utf8_bytes_are_replaced_not_rejected(tmp_path):
    raw = line(ua="Bot\xff").encode("latin-1") + b"\n"
    path = tmp_path / "latin.log"
    path.write_bytes(raw)
    b = read_all(path)
    assert len(b) == 1 and b.extra["user_agent"][0] == "Bot\ufffd"


def test_time_zones_and_slow_path(tmp_path):
    path = write(
        tmp_path,
        [
            line().replace("10:05:03 +0000", "12:05:03 +0200"),
            line().replace("10:05:03 +0000", "05:35:03 -0430"),
            line().replace("17/May/2015:10:05:03 +0000", "7/May/2015:10:05:03.250 +0000"),
        ],
    )
    b = read_all(path)
    assert b.ts.tolist() == [T0, T0, T0 - 10 * 86400 + 0.25]


def test_clf_to_epoch_matches_pandas():
    rng = np.random.default_rng(3)
    secs = rng.integers(-2_000_000_000, 4_000_000_000, 2000)
    offsets = rng.choice(["+0000", "-0700", "+0530", "+1400", "-1200"], 2000)
    texts = []
    for s, off in zip(secs, offsets, strict=True):
        sign = 1 if off[0] == "+" else -1
        delta = sign * (int(off[1:3]) * 3600 + int(off[3:]) * 60)
        local = pd.Timestamp(int(s) + delta, unit="s")
        texts.append(local.strftime("%d/%b/%Y:%H:%M:%S ") + off)
    assert clf_to_epoch(texts).tolist() == secs.astype(float).tolist()
    bad = ["29/Feb/2015:00:00:00 +0000", "31/Apr/2015:00:00:00 +0000", "", None,
           "17/Mai/2015:10:05:03 +0000", "17/May/2015:24:00:00 +0000"]
    assert np.isnan(clf_to_epoch(bad)).all()
    assert clf_to_epoch(["29/Feb/2016:00:00:00 +0000"])[0] == 1456704000.0


def test_sniff():
    assert sniff_access_log(b"") is None
    assert sniff_access_log(b'{"ts": 1, "path": "/a"}\n{"ts": 2, "path": "/b"}\n') is None
    assert sniff_access_log((line(common=True) + "\n").encode() * 3) == "common"
    assert sniff_access_log((line() + "\n").encode() * 3) == "combined"
    assert sniff_access_log(gzip.compress((line() + "\n").encode() * 3)) == "combined"
    head = b"host\tlogname\ttime\tmethod\turl\tresponse\tbytes\treferer\tuseragent\nh\t-\t1"
    assert sniff_access_log(head) == "nasa-tsv"
    # a trailing response time (nginx seconds, Apache microseconds): only "auto" reads it
    assert sniff_access_log((line(tail=" 0.012") + "\n").encode() * 3) == "auto"
    assert sniff_access_log((line(tail=" 1234") + "\n").encode() * 3) == "auto"


def test_detected_access_log_with_response_time_learns_latency(tmp_path):
    from driftbayes.io.recordings import detect_format, read_events

    path = write(tmp_path, [line(tail=" 0.012"), line(tail=" 0.250")])
    assert detect_format(path) == "access-log"
    got = EventBatch.concat(list(read_events(path)))
    assert got.latency_ms.tolist() == [12.0, 250.0]


def test_nasa_tsv_header_and_bad_values(tmp_path):
    lines = [
        "host\tlogname\ttime\tmethod\turl\tresponse\tbytes\treferer\tuseragent",
        "a.example\t-\t807256800\tGET\t/x/1.gif\t200\t10\t\t",
        "b.example\t-\tnoon\tGET\t/x\t200\t10\t\t",
        "c.example\t-\t807256801\t\t/x\t200\t10\t\t",
        "d.example\t-\t807256802\tHEAD\t/x\t304\t0\t\t",
        "too\tfew\tfields",
    ]
    report = BadRecordReport()
    b = read_all(write(tmp_path, lines, "n.tsv"), report=report)  # sniffed from the header
    assert b.line.tolist() == [2, 5]
    assert b.endpoint.tolist() == ["/x/1.gif", "/x"]
    assert b.extra["client"].tolist() == ["a.example", "d.example"]
    assert [(r.line, r.field) for r in report.first] == [(3, "ts"), (4, "request"), (6, "line")]
