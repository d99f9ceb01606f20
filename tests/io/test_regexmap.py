from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftbayes.events import COLUMNS, BadRecordError, BadRecordReport, EventBatch
from driftbayes.io.regexmap import (
    OPENSTACK_NOVA,
    OPENSTACK_NOVA_COMPUTE,
    RegexMapping,
    read_regex_mapped,
)
from tests.helpers import needs_real, real_path

NOVA_REL = "openstack-nova-api-sample/OpenStack_2k.log"
NOVA = real_path(NOVA_REL) or Path(NOVA_REL)
needs_nova = needs_real(NOVA_REL, "openstack")


def write(tmp_path, lines, name="app.log"):
    data = "\n".join(lines).encode() + b"\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def read_all(path, mapping, **kw) -> EventBatch:
    return EventBatch.concat(list(read_regex_mapped(path, mapping, **kw)))


def all_text(b: EventBatch) -> str:
    parts = [str(v) for name in COLUMNS for v in getattr(b, name)]
    parts += [str(v) for col in b.extra.values() for v in col]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# OpenStack nova-api (real sample)


@needs_nova
def test_openstack_nova_real_sample():
    lines = NOVA.read_text().splitlines()
    # `grep -c 'wsgi.server'`: the compute API and metadata API access lines
    n_requests = sum("wsgi.server" in line for line in lines)
    n_compute = sum("nova.osapi_compute.wsgi.server" in line for line in lines)
    assert (len(lines), n_requests, n_compute) == (2000, 1017, 809)

    report = BadRecordReport()
    b = read_all(NOVA, OPENSTACK_NOVA, report=report)
    assert len(b) == n_requests
    assert report.count == 0  # the 983 other log lines are not requests, not bad ones
    assert b.line.tolist() == [i + 1 for i, line in enumerate(lines) if "wsgi.server" in line]

    assert b.ts[0] == datetime(2017, 5, 16, 0, 0, 0, 8000, tzinfo=UTC).timestamp()
    assert b.ts[0] == pytest.approx(1494892800.008, abs=1e-6)
    assert (b.method[0], b.endpoint[0], b.status[0]) == ("GET", "/v2/{hash}/servers/detail", 200)
    assert b.latency_ms[0] == pytest.approx(247.7829, rel=1e-12)
    user, tenant = "113d3a99c3da401fbd62cc2caa5b96d2", "54fadb412c4e40cdbaed9335e4c35a9e"
    assert b.extra["user"][0] == user
    assert b.extra["client"][0] == f"{user} {tenant}"
    assert b.extra["tenant"][0] == tenant
    assert b.extra["request_id"][0] == "req-38101a0b-2096-447d-96ea-a692162415ae"
    assert b.extra["client_ip"][0] == "10.11.10.1"
    assert set(b.session) == {""} and set(b.persona) == {"default"}

    # SOURCE.md: status 200 ×933, 202 ×21, 204 ×22, 404 ×41; time p50 0.259 s, max 0.71 s
    assert pd.Series(b.status).value_counts().to_dict() == {200: 933, 404: 41, 204: 22, 202: 21}
    assert np.median(b.latency_ms) == pytest.approx(259.0, abs=1.0)
    assert b.latency_ms.max() == pytest.approx(711.6742)
    assert np.all(np.diff(b.ts) >= 0)
    # metadata requests carry no user: client None, the VM's address in client_ip
    meta = np.char.startswith(b.endpoint.astype(str), "/openstack") | np.char.startswith(
        b.endpoint.astype(str), "/latest")
    assert meta.sum() == n_requests - n_compute
    assert all(c is None for c in b.extra["client"][meta])
    assert all(c is not None for c in b.extra["client"][~meta])

    compute = read_all(NOVA, OPENSTACK_NOVA_COMPUTE)
    assert len(compute) == n_compute
    assert compute.endpoint[0] == "/v2/{hash}/servers/detail"


@needs_nova
def test_openstack_query_is_redacted_and_split(tmp_path):
    line = next(x for x in NOVA.read_text().splitlines() if "servers/detail?" in x)
    secret = line.replace("all_tenants=True", "all_tenants=True&token=secret")
    b = read_all(write(tmp_path, [secret]), OPENSTACK_NOVA)
    assert b.endpoint.tolist() == ["/v2/{hash}/servers/detail"]
    assert "secret" not in all_text(b)
    assert b.extra["query"][0].startswith("all_tenants=True&token=[REDACTED]&changes-since=")


# --------------------------------------------------------------------------------------------
# synthetic mappings

APP = RegexMapping(
    pattern=(
        r"^(?P<when>\S+ \S+) \[(?P<sid>[^\]]*)\] (?P<verb>\w+) (?P<url>\S+) -> (?P<code>\S+) "
        r"in (?P<us>\S+)us user=(?P<who>\S+) org=(?P<org>\S+) tier=(?P<tier>\S+)"
    ),
    fields={"ts": "when", "method": "verb", "path": "url", "status": "code", "latency": "us",
            "user": "who", "client": ("who", "org"), "session": "sid", "persona": "tier"},
    extra={"org": "org"},
    ts_format="%Y-%m-%d %H:%M:%S",
    latency_unit="us",
)


def app_line(when="2024-01-02 03:04:05", sid="s1", verb="get", url="/api/items/17", code="200",
             us="1500", who="ann", org="acme", tier="gold"):
    return f"{when} [{sid}] {verb} {url} -> {code} in {us}us user={who} org={org} tier={tier}"


def test_custom_mapping_fields(tmp_path):
    lines = [
        app_line(),
        app_line(sid="", verb="POST", url="/api/items?token=secret", code="201", us="-",
                 who="-", tier="-"),
    ]
    b = read_all(write(tmp_path, lines), APP)
    t = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert b.ts.tolist() == [t, t]
    assert b.method.tolist() == ["GET", "POST"]
    assert b.endpoint.tolist() == ["/api/items/{id}", "/api/items"]
    assert b.status.tolist() == [200, 201]
    assert b.latency_ms[0] == pytest.approx(1.5) and np.isnan(b.latency_ms[1])
    assert b.session.tolist() == ["s1", ""]
    assert b.persona.tolist() == ["gold", "default"]
    assert b.extra["user"].tolist() == ["ann", None]
    assert b.extra["client"].tolist() == ["ann acme", "acme"]
    assert b.extra["org"].tolist() == ["acme", "acme"]
    assert b.extra["query"].tolist() == [None, "token=[REDACTED]"]
    assert "secret" not in all_text(b)


def test_same_named_groups_need_no_fields(tmp_path):
    mapping = RegexMapping(
        r"(?P<ts>\d+) (?P<method>\w+) (?P<path>\S+) (?P<status>\d+) (?P<latency>[\d.]+)s",
        ts_format="ms", latency_unit="s",
    )
    b = read_all(write(tmp_path, ["noise 1700000000250 GET /a/1 503 0.5s trailing"]), mapping)
    assert b.ts.tolist() == [1700000000.25]
    assert (b.method[0], b.endpoint[0], b.status[0], b.latency_ms[0]) == (
        "GET", "/a/{id}", 503, 500.0)


@pytest.mark.parametrize(
    ("ts_format", "text", "expected"),
    [
        ("iso", "2017-05-16T00:00:00.008Z", 1494892800.008),
        ("iso", "2017-05-16 02:00:00+02:00", 1494892800.0),
        ("s", "1494892800.5", 1494892800.5),
        ("us", "1494892800000001", 1494892800.000001),
        ("ns", "1494892800000000000", 1494892800.0),
        ("clf", "16/May/2017:02:00:00 +0200", 1494892800.0),
        ("%d.%m.%Y-%H:%M", "16.05.2017-00:00", 1494892800.0),
    ],
)
def test_ts_formats(tmp_path, ts_format, text, expected):
    mapping = RegexMapping(r"^(?P<ts>.+?) (?P<path>/\S*)$", ts_format=ts_format)
    b = read_all(write(tmp_path, [f"{text} /x"]), mapping)
    assert b.ts[0] == pytest.approx(expected, abs=1e-6)
    assert b.status[0] == 0 and np.isnan(b.latency_ms[0]) and b.method[0] == "GET"


def bad_file(tmp_path, name="app.log"):
    return write(
        tmp_path,
        [
            app_line(),  # 1 ok
            "INFO something else entirely",  # 2 unmatched
            app_line(when="2024-13-02 03:04:05"),  # 3 bad ts
            app_line(code="abc"),  # 4 bad status
            app_line(code="700"),  # 5 out of range
            "",  # 6 blank
            app_line(us="1e400"),  # 7 latency not finite
            app_line(verb="G/T"),  # 8 -> does not match (\w+)
            app_line(sid="s9"),  # 9 ok
        ],
        name,
    )


def test_bad_values_lenient_with_line_numbers(tmp_path):
    report = BadRecordReport(keep=10)
    b = read_all(bad_file(tmp_path), APP, report=report)
    assert b.line.tolist() == [1, 9]
    assert [(r.line, r.field) for r in report.first] == [
        (2, "line"), (3, "ts"), (4, "status"), (5, "status"), (7, "latency"), (8, "line")]


def test_skip_unmatched_skips_silently_but_keeps_bad_values(tmp_path):
    mapping = RegexMapping(APP.pattern, fields=APP.fields, ts_format=APP.ts_format,
                           latency_unit="us", skip_unmatched=True)
    report = BadRecordReport(keep=10)
    b = read_all(bad_file(tmp_path, "app.log.gz"), mapping, report=report, batch_size=3)
    assert b.line.tolist() == [1, 9]
    assert [(r.line, r.field) for r in report.first] == [
        (3, "ts"), (4, "status"), (5, "status"), (7, "latency")]


def test_strict_raises_at_first_bad_line(tmp_path):
    with pytest.raises(BadRecordError, match=r"app\.log:2: field 'line'"):
        read_all(bad_file(tmp_path), APP, strict=True)
    mapping = RegexMapping(APP.pattern, fields=APP.fields, ts_format=APP.ts_format,
                           skip_unmatched=True)
    with pytest.raises(BadRecordError, match=r"app\.log:3: field 'ts'"):
        read_all(bad_file(tmp_path), mapping, strict=True)


def test_without_report_warns(tmp_path):
    with pytest.warns(UserWarning, match="skipped 6 bad record"):
        read_all(bad_file(tmp_path), APP)


def test_mapping_validation():
    with pytest.raises(ValueError, match="does not compile"):
        RegexMapping("(?P<ts>")
    with pytest.raises(ValueError, match="unknown canonical"):
        RegexMapping(r"(?P<ts>\S+) (?P<path>\S+)", fields={"latency_ms": "ts"})
    with pytest.raises(ValueError, match="no group"):
        RegexMapping(r"(?P<ts>\S+) (?P<path>\S+)", fields={"status": "code"})
    with pytest.raises(ValueError, match="needs a 'path'"):
        RegexMapping(r"(?P<ts>\S+)")
    with pytest.raises(ValueError, match="ts_format"):
        RegexMapping(r"(?P<ts>\S+) (?P<path>\S+)", ts_format="epoch")
    with pytest.raises(ValueError, match="latency_unit"):
        RegexMapping(r"(?P<ts>\S+) (?P<path>\S+)", latency_unit="min")
    assert isinstance(OPENSTACK_NOVA.regex, re.Pattern)
    assert OPENSTACK_NOVA.sources["client"] == ("user", "tenant")
