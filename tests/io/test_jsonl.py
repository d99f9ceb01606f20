from __future__ import annotations

import gzip
import io
import json
import sys
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftbayes.events import COLUMNS, BadRecordError, BadRecordReport, EventBatch
from driftbayes.io import read_jsonl


def write(tmp_path, lines, name="events.jsonl", *, newline_at_end=True):
    """Write ``lines`` (dicts, str or bytes) one per physical line."""
    raw = [
        orjson.dumps(x) if isinstance(x, dict) else x.encode() if isinstance(x, str) else x
        for x in lines
    ]
    data = b"\n".join(raw) + (b"\n" if newline_at_end else b"")
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def read_all(path, **kw) -> EventBatch:
    return EventBatch.concat(list(read_jsonl(path, **kw)))


def assert_same(a: EventBatch, b: EventBatch) -> None:
    for name in COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            assert x.tolist() == y.tolist(), name


def good(i: int, **extra) -> dict:
    return {
        "ts": 1700000000 + i,
        "method": "get",
        "path": f"/api/users/{i}",
        "status": 200,
        "latency_ms": 10.0 + i,
        **extra,
    }


# ------------------------------------------------------------------------------ exact columns


def test_small_file_exact_columns(tmp_path):
    path = write(
        tmp_path,
        [
            {
                "ts": 1700000000.5,
                "method": "post",
                "path": "/api/users/42?x=1",
                "status": 201,
                "latency_ms": 12.5,
                "persona": "mobile",
                "session": "s-1",
                "extra": {"a": [1]},
            },
            {"ts": 1700000001, "path": "/api/orders/7/items", "status": 404},
            "",
            {
                "ts": 1700000002,
                "method": "DELETE",
                "endpoint": "/api/orders/{orderId}",
                "path": "/api/orders/99",
                "status": 500,
                "latency_ms": 0,
                "persona": "",
                "session": 17,
            },
            {
                "ts": 1700000003,
                "path": "/",
                "status": 599,
                "persona": None,
                "session": None,
                "latency_ms": None,
                "method": None,
            },
        ],
    )
    b = read_all(path)
    assert b.source == str(path)
    assert b.ts.tolist() == [1700000000.5, 1700000001.0, 1700000002.0, 1700000003.0]
    assert b.method.tolist() == ["POST", "GET", "DELETE", "GET"]
    assert b.endpoint.tolist() == [
        "/api/users/{id}",
        "/api/orders/{id}/items",
        "/api/orders/{orderId}",
        "/",
    ]
    assert b.status.tolist() == [201, 404, 500, 599]
    np.testing.assert_array_equal(b.latency_ms, [12.5, np.nan, 0.0, np.nan])
    assert b.persona.tolist() == ["mobile", "default", "default", "default"]
    assert b.session.tolist() == ["s-1", "", "17", ""]
    assert b.line.tolist() == [1, 2, 4, 5]
    for name, dtype in COLUMNS.items():
        assert getattr(b, name).dtype == np.dtype(dtype), name


def test_persona_field_configurable(tmp_path):
    path = write(tmp_path, [good(1, user="alice", persona="ignored"), good(2)])
    b = read_all(path, persona_field="user")
    assert b.persona.tolist() == ["alice", "default"]


def test_crlf_bom_and_whitespace_lines(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + orjson.dumps(good(1))
        + b"\r\n  \r\n\t\n"
        + orjson.dumps(good(2))
        + b"\r\n"
    )
    report = BadRecordReport()
    b = read_all(path, report=report)
    assert b.line.tolist() == [1, 4]
    assert report.count == 0


def test_stdin(monkeypatch):
    data = b"\n".join(orjson.dumps(good(i)) for i in range(3)) + b"\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    b = read_all("-")
    assert len(b) == 3 and b.source == "<stdin>"


def test_gzip_same_as_plain(tmp_path):
    lines = [good(i, persona=f"p{i % 3}") for i in range(50)] + ["{broken"]
    plain = read_all(write(tmp_path, lines), report=BadRecordReport())
    gz_report = BadRecordReport()
    gz = read_all(write(tmp_path, lines, "events.jsonl.gz"), report=gz_report)
    assert len(plain) == 50 and gz_report.count == 1 and gz_report.first[0].line == 51
    plain.source = gz.source
    assert_same(plain, gz)


def test_gzip_detected_by_content(tmp_path):
    path = tmp_path / "no_suffix.jsonl"
    path.write_bytes(gzip.compress(orjson.dumps(good(1)) + b"\n"))
    assert read_all(path).endpoint.tolist() == ["/api/users/{id}"]


# ------------------------------------------------------------------------------ timestamps


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1675078732, 1675078732.0),
        (1675078732.047, 1675078732.047),
        (1675078732047, 1675078732.047),  # > 1e11 → milliseconds
        (1675078732047000, 1675078732.047),  # > 1e14 → microseconds
        (1675078732047000000, 1675078732.047),  # > 1e17 → nanoseconds
        (4099999999, 4099999999.0),  # seconds (2099; 99999999999, year 5138, is out of range)
        (200000000000, 200000000.0),  # 2e11 → ms (1976-05-03)
        (200000000000000, 200000000.0),  # 2e14 → µs
        (200000000000000000, 200000000.0),  # 2e17 → ns
        ("2023-01-30T11:38:52Z", 1675078732.0),
        ("2023-01-30T11:38:52.047Z", 1675078732.047),
        ("2023-01-30T11:38:52", 1675078732.0),  # naive → UTC
        ("2023-01-30T12:38:52+01:00", 1675078732.0),
        ("2023-01-30 11:38:52.047+00:00", 1675078732.047),
    ],
)
def test_timestamps(tmp_path, ts, expected):
    b = read_all(write(tmp_path, [{"ts": ts, "path": "/", "status": 200}]))
    assert b.ts[0] == pytest.approx(expected, abs=1e-6)


def test_iso_matches_datetime(tmp_path):
    stamps = ["2024-02-29T23:59:59.5Z", "2024-03-01T00:00:00-05:00", "1999-12-31T23:59:59"]
    b = read_all(write(tmp_path, [{"ts": s, "path": "/", "status": 200} for s in stamps]))
    want = [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps]
    want = [(w if w.tzinfo else w.replace(tzinfo=UTC)).timestamp() for w in want]
    np.testing.assert_allclose(b.ts, want, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ batching


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 64, 10_000])
def test_batches_concat_equal_one_batch(tmp_path, batch_size):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(200):
        r = rng.random()
        if r < 0.1:
            lines.append("")
        elif r < 0.2:
            lines.append('{"ts": 1, "status": "oops"}')
        else:
            lines.append(
                good(
                    i,
                    persona=["a", "b", None][i % 3],
                    session=i // 10,
                    ts=["2023-01-30T11:38:52Z", 1700000000 + i][i % 2],
                )
            )
    path = write(tmp_path, lines)
    whole = read_all(path, batch_size=100_000, report=BadRecordReport())
    batches = list(read_jsonl(path, batch_size=batch_size, report=BadRecordReport()))
    assert all(0 < len(b) <= batch_size for b in batches)
    assert_same(EventBatch.concat(batches), whole)


def test_long_lines_across_chunks(tmp_path):
    big = good(1, padding="x" * 3_000_000)
    path = write(tmp_path, [good(0), big, good(2), "{" + "y" * 2_500_000], newline_at_end=False)
    report = BadRecordReport()
    b = read_all(path, report=report)
    assert b.line.tolist() == [1, 2, 3]
    assert [(r.line, r.field) for r in report.first] == [(4, "json")]


# ------------------------------------------------------------------------------ bad lines

BAD_LINES = [
    # (line content, field)
    ('{"ts": 1700000000, "path": "/a", "status": 200', "json"),  # invalid JSON
    ("[1]", "json"),  # not an object
    ('"just a string"', "json"),
    (b'{"ts": 1700000000, "path": "/caf\xe9", "status": 200}', "json"),  # non-UTF-8 byte
    ('{"ts": "yesterday", "path": "/a", "status": 200}', "ts"),
    ('{"ts": true, "path": "/a", "status": 200}', "ts"),
    ('{"path": "/a", "status": 200}', "ts"),
    ('{"ts": 1700000000, "method": 5, "path": "/a", "status": 200}', "method"),
    ('{"ts": 1700000000, "status": 200}', "path"),
    ('{"ts": 1700000000, "path": 17, "status": 200}', "path"),
    ('{"ts": 1700000000, "endpoint": ["x"], "path": "/a", "status": 200}', "endpoint"),
    ('{"ts": 1700000000, "path": "/a", "status": 42}', "status"),
    ('{"ts": 1700000000, "path": "/a", "status": 600}', "status"),
    ('{"ts": 1700000000, "path": "/a", "status": "200"}', "status"),
    ('{"ts": 1700000000, "path": "/a", "status": 200.5}', "status"),
    ('{"ts": 1700000000, "path": "/a"}', "status"),
    ('{"ts": 1700000000, "path": "/a", "status": 200, "latency_ms": -1}', "latency_ms"),
    (
        '{"ts": 1700000000, "path": "/a", "status": 200, "latency_ms": NaN}',
        "json",
    ),  # NaN is not JSON
    # inf: decoded line by line, rejected by the latency check (issue 12)
    ('{"ts": 1700000000, "path": "/a", "status": 200, "latency_ms": 1e999}', "latency_ms"),
    ('{"ts": 1700000000, "path": "/a", "status": 200, "latency_ms": "5"}', "latency_ms"),
    ('{"ts": 1700000000, "path": "/a", "status": 200, "latency_ms": true}', "latency_ms"),
    ('{"ts": 1700000000, "path": "/a", "status": 200, "persona": 3}', "persona"),
    ('{"ts": 1700000000, "path": "/a", "status": 200, "session": {"id": 1}}', "session"),
    ('{"ts": 1700000000, "path": "/a", "status": 200, "session": false}', "session"),
]


def test_bad_lines_skipped_and_reported(tmp_path):
    lines, expected_bad = [], []
    for k, (content, field) in enumerate(BAD_LINES):
        lines.append(good(k))
        lines.append(content)
        expected_bad.append((2 * k + 2, field))
    lines.append(good(99))
    lines.append('{"ts": 1700000000, "path": "/trunc')  # truncated last line, no newline
    expected_bad.append((len(lines), "json"))
    path = write(tmp_path, lines, newline_at_end=False)
    report = BadRecordReport(keep=100)
    b = read_all(path, report=report, batch_size=5)
    assert [(r.line, r.field) for r in report.first] == expected_bad
    assert report.count == len(expected_bad)
    assert all(r.source == str(path) and r.reason for r in report.first)
    # the good lines around them are intact
    assert b.line.tolist() == [2 * k + 1 for k in range(len(BAD_LINES))] + [2 * len(BAD_LINES) + 1]
    assert b.endpoint.tolist() == ["/api/users/{id}"] * len(b)
    assert b.latency_ms.tolist() == [10.0 + k for k in range(len(BAD_LINES))] + [109.0]
    assert (b.status == 200).all() and (b.method == "GET").all()


def test_bad_reasons_are_specific(tmp_path):
    path = write(
        tmp_path,
        [
            '{"ts": 1700000000, "path": "/a", "status": 42}',
            '{"ts": 1700000000, "path": "/a", "status": 200, "latency_ms": -3.5}',
            b'{"ts": 1700000000, "path": "/\xff", "status": 200}',
            '{"ts": 1700000000, "path": "/a", "status": 200, "who": 3}',
        ],
    )
    report = BadRecordReport()
    read_all(path, report=report, persona_field="who")
    reasons = [(r.field, r.reason) for r in report.first]
    assert reasons[0] == ("status", "out of range 100-599: 42")
    assert reasons[1] == ("latency_ms", "negative: -3.5")
    assert reasons[2][0] == "json" and "UTF-8" in reasons[2][1]
    assert reasons[3][0] == "who"


def test_all_lines_bad_yields_nothing(tmp_path):
    path = write(tmp_path, ["nope", "[]", "", '{"ts": 1}'])
    report = BadRecordReport()
    assert list(read_jsonl(path, report=report)) == []
    assert report.count == 3


def test_strict_raises_with_location_and_field(tmp_path):
    path = write(
        tmp_path, [good(1), good(2), '{"ts": 1700000000, "path": "/a", "status": 42}', "garbage"]
    )
    with pytest.raises(BadRecordError) as exc:
        read_all(path, strict=True)
    assert f"{path}:3:" in str(exc.value)
    assert "'status'" in str(exc.value)
    assert exc.value.bad.line == 3 and exc.value.bad.field == "status"


def test_strict_json_error(tmp_path):
    path = write(tmp_path, [good(1), "", "{oops"])
    with pytest.raises(BadRecordError, match=r":3: field 'json'"):
        read_all(path, strict=True)


def test_lenient_without_report_warns(tmp_path):
    path = write(tmp_path, [good(1), "garbage"])
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        b = read_all(path)
    assert len(b) == 1


def test_missing_file_fails_early(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "nope.jsonl")


# ------------------------------------------------------------------------------ property test

_BAD_VALUES = {
    "ts": ["soon", True, None, [], {}, ""],
    "status": [42, 600, "200", None, True, 200.5, -1],
    "latency_ms": [-0.001, "5", True, [1], {}],
    "method": [5, [], {}, False],
    "path": [None, 5, ""],
    "session": [True, [], {"a": 1}],
}

NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"))
good_events = st.fixed_dictionaries(
    {
        "ts": st.one_of(
            st.integers(0, 4_102_444_799),  # good: 1970 up to (not including) 2100
            st.floats(0, 4_102_444_799, allow_nan=False),
            st.sampled_from(["2023-01-30T11:38:52Z", "2020-02-29T00:00:00.125+02:00"]),
        ),
        "path": st.lists(
            st.sampled_from(["api", "users", "42", "{x}", "a" * 20 + "1"]), max_size=4
        ).map(lambda s: "/" + "/".join(s)),
        "status": st.integers(100, 599),
    },
    optional={
        "method": st.sampled_from(["get", "POST", "Put"]),
        "latency_ms": st.one_of(
            st.none(), st.floats(0, 1e6, allow_nan=False), st.integers(0, 10**6)
        ),
        # good names hold no control character (issue 12)
        "persona": st.one_of(st.none(), st.text(NAME_CHARS, max_size=5)),
        "session": st.one_of(st.none(), st.text(NAME_CHARS, max_size=5), st.integers(-5, 5)),
        "extra": st.recursive(
            st.none() | st.integers(-1000, 1000), lambda c: st.lists(c, max_size=2)
        ),
    },
)


@st.composite
def near_misses(draw):
    event = draw(good_events)
    field = draw(st.sampled_from(sorted(_BAD_VALUES)))
    value = draw(st.sampled_from(_BAD_VALUES[field]))
    if value is None:
        event.pop(field, None)
    else:
        event[field] = value
    return orjson.dumps(event)


garbage = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    near_misses(),
    good_events.map(lambda e: orjson.dumps(e)[: max(1, len(orjson.dumps(e)) // 2)]),
    st.sampled_from([b"[1]", b"null", b"1", b'"s"', b"{}", b"\xff\xfe", b"  ", b""]),
)


@settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.one_of(good_events.map(lambda e: ("good", e)), garbage.map(lambda g: ("bad", g))),
        min_size=1,
        max_size=30,
    ),
    batch_size=st.integers(1, 8),
)
def test_garbage_never_crashes_and_good_lines_survive(tmp_path, rows, batch_size):
    rows = [("good", {"ts": 1, "path": "/first", "status": 200})] + rows  # line 1 never a BOM case
    raw = [orjson.dumps(x) if kind == "good" else x for kind, x in rows]
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(raw))
    report = BadRecordReport(keep=1000)
    got = read_all(path, batch_size=batch_size, report=report)

    good_lines = [i + 1 for i, (kind, _) in enumerate(rows) if kind == "good"]
    blank = {i + 1 for i, (kind, x) in enumerate(rows) if kind == "bad" and (not x or x.isspace())}
    bad_lines = [i + 1 for i, (kind, _) in enumerate(rows) if kind == "bad" and i + 1 not in blank]
    assert got.line.tolist() == good_lines
    assert [r.line for r in report.first] == bad_lines
    expected = EventBatch.from_records([{**x, "ts": 0} for kind, x in rows if kind == "good"])
    assert got.status.tolist() == expected.status.tolist()
    assert got.endpoint.tolist() == expected.endpoint.tolist()
    np.testing.assert_array_equal(got.latency_ms, expected.latency_ms)
    assert got.persona.tolist() == expected.persona.tolist()


def test_without_pandas_table_helper(tmp_path, monkeypatch):
    import driftbayes.io.jsonl as jsonl

    lines = [
        good(i, persona=["a", None, 3][i % 3], session=[1, "s", None][i % 2]) for i in range(30)
    ]
    lines += ['{"ts": true, "path": "/a", "status": 200}', "[]"]
    path = write(tmp_path, lines)
    fast_report, slow_report = BadRecordReport(keep=50), BadRecordReport(keep=50)
    fast = read_all(path, report=fast_report)
    monkeypatch.setattr(jsonl, "_dicts_to_array", None)
    slow = read_all(path, report=slow_report)
    assert_same(fast, slow)
    assert fast_report.first == slow_report.first and fast_report.count == 12


# ------------------------------------------------------------------------------ Arrow fast path

from driftbayes.io import jsonl as jsonl_module  # noqa: E402

_value_st = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.sampled_from([200, 201.0, 404, 503, 99, 600, 200.5, "200", "", "GET", "post", "/a/1",
                     "2023-11-14T22:13:20Z", "2023-11-14 22:13:20.5+01:00", "not a date",
                     1700000000, 1700000000123, -5.0, 0, "mobile", "s-1", "é/ü"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2),
)
_FIELDS_ST = st.sampled_from(["ts", "method", "path", "endpoint", "status", "latency_ms",
                              "persona", "session", "extra"])


@st.composite
def _jsonl_batch(draw) -> list[bytes]:
    """Lines that are mostly valid events, with typed-wrong, missing and out-of-range values,
    unknown fields, ISO or epoch timestamps — all valid JSON objects, one per line."""
    iso = draw(st.booleans())
    lines = []
    for i in range(draw(st.integers(1, 25))):
        obj = {"ts": f"2023-11-14T22:{i % 60:02d}:00Z" if iso else 1700000000 + i,
               "method": "get", "path": f"/api/users/{i}?token=x", "status": 200,
               "latency_ms": 1.5 * i, "session": f"s{i % 3}"}
        for _ in range(draw(st.integers(0, 2))):
            key = draw(_FIELDS_ST)
            if draw(st.booleans()):
                obj.pop(key, None)
            else:
                obj[key] = draw(_value_st)
        lines.append(json.dumps(obj).encode())  # json: integers beyond 64 bits too
    return lines


def _batch_rows(batch: EventBatch) -> list[tuple]:
    return list(zip(*(getattr(batch, n).tolist() for n in COLUMNS), strict=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_jsonl_batch())
def test_arrow_fast_path_agrees_with_orjson_path(lines):
    """Same events (bit for bit, NaN = NaN) and the same bad records, whichever path reads."""
    fast = jsonl_module._read_batch(list(lines), 1, "f", "persona", ["float64", "string"])
    slow = jsonl_module._read_batch(list(lines), 1, "f", "persona", None)
    assert repr(_batch_rows(fast[0])) == repr(_batch_rows(slow[0]))
    assert [str(b) for b in fast[1]] == [str(b) for b in slow[1]]


def test_arrow_fast_path_is_taken_for_clean_batches_and_refused_otherwise():
    lines = [orjson.dumps(good(i)) for i in range(5)]
    assert jsonl_module._arrow_buffer(lines) is not None
    crlf = [x + b"\r" for x in lines]
    assert jsonl_module._arrow_buffer(crlf) is not None
    for bad in (b"", b"  ", b'{"ts": NaN}', b'{"p": "\xff"}', b"[1]", b'{"ts": Infinity}'):
        assert jsonl_module._arrow_buffer([*lines[:2], bad, *lines[2:]]) is None, bad
    # Arrow refuses a field of another JSON type (the orjson path then explains the line)
    buf = jsonl_module._arrow_buffer([orjson.dumps(good(0, status="200"))])
    assert jsonl_module._arrow_table(buf, 1, "persona", "float64") is None
    dup = b'{"ts": 1, "path": "/a", "status": 200, "status": 201}'
    assert jsonl_module._arrow_table(dup, 1, "persona", "float64") is None
    # two objects on one line: Arrow reads two rows where there is one line
    two = [*lines[:2], b'{"ts": 1, "path": "/a", "status": 200}{"ts": 2}', *lines[2:]]
    buf = jsonl_module._arrow_buffer(two)
    assert jsonl_module._arrow_table(buf, len(two), "persona", "float64") is None
