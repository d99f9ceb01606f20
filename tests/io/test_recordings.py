"""Format dispatch: content sniffing per format, forced formats, errors, named recordings."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from ingest_samples import (
    LINE_FORMATS,
    Rec,
    event_rows,
    need,
    sqlite_row,
    write_har,
    write_lines,
    write_sqlite,
)

from driftbayes.config import Config
from driftbayes.events import BadRecordReport, EventBatch
from driftbayes.io import recordings
from driftbayes.io.recordings import (
    FORMATS,
    RECORDINGS,
    Format,
    FormatUnavailableError,
    data_root,
    detect_format,
    read_events,
)
from tests.helpers import use_recording

RECS = [Rec(i, i % 10, 100 + i, 200 if i % 4 else 404, 5 + i) for i in range(6)]

#: format written → what content sniffing says (csv has no signature: it needs a mapping)
DETECTED = {"jsonl": "jsonl", "combined": "combined", "common": "common",
            "nasa-tsv": "nasa-tsv", "openstack": "openstack", "csv": None, "otlp": "otlp",
            "jaeger": "jaeger", "trainticket-spans": "trainticket-spans"}


def read_all(path, **kw) -> EventBatch:
    return EventBatch.concat(list(read_events(path, **kw)))


# ------------------------------------------------------------------------------ sniffing


@pytest.mark.parametrize("fmt", list(LINE_FORMATS))
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_line_formats_are_detected_and_read(tmp_path, fmt, gz):
    spec = LINE_FORMATS[fmt]
    need(spec.module)
    path = write_lines(tmp_path / "traffic.dat", spec, RECS)  # the name says nothing
    if gz:
        path.with_suffix(".gz").write_bytes(gzip.compress(path.read_bytes()))
        path = path.with_suffix(".gz")
    assert detect_format(path) == DETECTED[fmt]
    kwargs = spec.kwargs()
    if DETECTED[fmt] is None:  # csv: a mapping decides
        b = read_all(path, **kwargs)
    else:
        assert "mapping" not in kwargs
        b = read_all(path)
    assert len(b) == len(RECS)
    assert b.ts.tolist() == pytest.approx([r.ts for r in RECS], abs=0.01)
    if fmt != "trainticket-spans":  # TrainTicket spans carry no status
        assert b.status.tolist() == [r.status for r in RECS]
    # forcing the format gives the same events
    assert event_rows([read_all(path, fmt=fmt, **kwargs)]) == event_rows([b])


def test_har_detected(tmp_path):
    need("driftbayes.io.har")
    path = write_har(tmp_path / "capture.json", RECS)
    assert detect_format(path) == "har"
    b = read_all(path)
    assert b.status.tolist() == [r.status for r in RECS]
    assert set(b.endpoint) == {"/api/users/{id}"}
    gz = tmp_path / "capture.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert detect_format(gz) == "har"
    same = read_all(gz)
    assert same.session.tolist() == ["har:capture.gz"] * len(RECS)  # sessions name the file
    assert event_rows([same], extras=False)[0][:6] == event_rows([b], extras=False)[0][:6]


def test_mockforge_sqlite_detected(tmp_path):
    need("driftbayes.io.mockforge_sqlite")
    path = write_sqlite(tmp_path / "recordings.bin", [sqlite_row(r) for r in RECS])
    assert detect_format(path) == "mockforge-sqlite"
    b = read_all(path)
    assert b.status.tolist() == [r.status for r in RECS]
    assert b.latency_ms.tolist() == [r.latency_ms for r in RECS]


def test_sniff_order_har_and_spans_before_jsonl(tmp_path):
    """HAR and OTLP documents start with '{' too: their sniffers come first."""
    need("driftbayes.io.har")
    need("driftbayes.io.spans")
    otlp = write_lines(tmp_path / "o.jsonl", LINE_FORMATS["otlp"], RECS[:1])
    assert detect_format(otlp) == "otlp"  # despite the .jsonl name: content wins
    har = write_har(tmp_path / "h.jsonl", RECS[:1])
    assert detect_format(har) == "har"


def test_suffix_decides_only_without_content(tmp_path):
    for name, fmt in [("a.jsonl", "jsonl"), ("a.ndjson.gz", "jsonl"), ("a.har", "har"),
                      ("a.log", "access-log"), ("a.db", "mockforge-sqlite"), ("a.txt", None)]:
        p = tmp_path / name
        p.write_bytes(b"")
        assert detect_format(p) == fmt, name
    assert read_all(tmp_path / "a.jsonl").ts.size == 0


def test_broken_gzip_is_sniffed_as_far_as_it_inflates(tmp_path):
    need("driftbayes.io.accesslog")
    data = gzip.compress(b"\n".join(LINE_FORMATS["combined"].record(r) for r in RECS * 50))
    p = tmp_path / "cut.gz"
    p.write_bytes(data[: len(data) // 2])
    assert detect_format(p) == "combined"


def test_unknown_and_undetectable_formats_name_file_and_list_formats(tmp_path):
    p = tmp_path / "mystery.bin"
    p.write_bytes(b"\x00\x01 not a known format\n" * 10)
    with pytest.raises(ValueError, match=r"mystery\.bin: cannot tell its format.*jsonl, har"):
        read_events(p)
    with pytest.raises(ValueError, match=r"mystery\.bin: unknown format 'xml'\. Supported "
                                         r"formats: jsonl, har, access-log"):
        read_events(p, fmt="xml")
    with pytest.raises(ValueError, match="csv format needs a CsvMapping"):
        read_events(p, fmt="csv")
    with pytest.raises(FileNotFoundError, match="registered: trainticket"):
        read_events(tmp_path / "missing.log")


def test_missing_reader_module_breaks_only_its_format(tmp_path, monkeypatch):
    broken = Format("har", "driftbayes.io.no_such_reader", "read_har", "HAR")
    monkeypatch.setitem(FORMATS, "har", broken)
    monkeypatch.setattr(recordings, "SNIFFERS", tuple(
        (n, recordings._bool_sniffer("driftbayes.io.no_such_reader", "sniff", "har"))
        if n == "har" else (n, s) for n, s in recordings.SNIFFERS))
    jsonl = write_lines(tmp_path / "a.jsonl", LINE_FORMATS["jsonl"], RECS)
    assert len(read_all(jsonl)) == len(RECS)  # other formats unaffected
    with pytest.raises(FormatUnavailableError, match="format 'har' needs "
                                                     "driftbayes.io.no_such_reader"):
        read_events(jsonl, fmt="har")


def test_reader_options_pass_through(tmp_path):
    need("driftbayes.io.accesslog")
    p = write_lines(tmp_path / "a.log", LINE_FORMATS["combined"], RECS)
    assert len(read_all(p, fmt="access-log", log_format="combined")) == len(RECS)
    with pytest.raises(ValueError):
        read_events(p, fmt="access-log", log_format="%Q nonsense %Z")


def test_strict_and_report_reach_the_reader(tmp_path):
    spec = LINE_FORMATS["combined"]
    need(spec.module)
    p = tmp_path / "a.log"
    p.write_bytes(spec.record(RECS[0]) + b"\ngarbage line\n" + spec.record(RECS[1]) + b"\n")
    report = BadRecordReport()
    assert len(read_all(p, report=report, config=Config())) == 2
    assert report.count == 1 and report.first[0].line == 2
    from driftbayes.events import BadRecordError

    with pytest.raises(BadRecordError, match="a.log:2"):
        read_all(p, strict=True)


def test_config_enriches_and_csv_mapping_sets_format(tmp_path):
    spec = LINE_FORMATS["combined"]
    need(spec.module)
    p = write_lines(tmp_path / "a.log", spec, RECS)
    raw = read_all(p, enrich=False)
    assert (raw.session == "").all()
    b = read_all(p, config=Config(session_gap=5))  # records are 10 s apart: one session each
    assert b.session.tolist() == [f"10.0.0.1 Mozilla/5.0 (test)#{k}" for k in range(1, 7)]
    b = read_all(p, config=Config())
    assert set(b.session) == {"10.0.0.1 Mozilla/5.0 (test)#1"}
    # without a config the default one enriches, as `driftbayes learn` does
    assert read_all(p).session.tolist() == b.session.tolist()
    csv = write_lines(tmp_path / "a.csv", LINE_FORMATS["csv"], RECS)
    assert len(read_all(csv, **LINE_FORMATS["csv"].kwargs())) == len(RECS)


def test_regex_mapping_selects_regex_format(tmp_path):
    regexmap = need("driftbayes.io.regexmap")
    p = tmp_path / "app.log"
    p.write_text("2024-01-01T00:00:00Z GET /a/1 200\nnoise\n2024-01-01T00:00:05Z GET /a/2 500\n")
    mapping = regexmap.RegexMapping(
        pattern=r"^(?P<ts>\S+) (?P<method>\S+) (?P<path>\S+) (?P<status>\d+)$",
        skip_unmatched=True)
    b = read_all(p, mapping=mapping)
    assert b.endpoint.tolist() == ["/a/{id}", "/a/{id}"] and b.status.tolist() == [200, 500]


# ------------------------------------------------------------------------------ recordings


def test_registered_recordings():
    assert {"trainticket", "trainticket-spans", "nasa", "apache", "openstack",
            "har-samples"} <= set(RECORDINGS)
    for r in RECORDINGS.values():
        assert r.fmt in FORMATS and r.description


def test_multi_file_recording_streams_every_file(tmp_path, monkeypatch):
    need("driftbayes.io.har")
    root = tmp_path / "real"
    (root / "har-samples").mkdir(parents=True)
    for k, name in enumerate(["b.har.gz", "a.har.gz"]):
        doc = write_har(tmp_path / f"{k}.har", [Rec(10 * k + i, 0, i, 200, 5) for i in range(3)])
        (root / "har-samples" / name).write_bytes(gzip.compress(doc.read_bytes()))
    (root / "har-samples" / "index.csv").write_text(
        "file,first_startedDateTime\na.har.gz,2023-11-14T22:13:20Z\nb.har.gz,2015-01-01T00:00:00Z\n")
    monkeypatch.setenv("DRIFTBAYES_DATA", str(tmp_path))
    files = RECORDINGS["har-samples"].files()
    assert [f.name for f in files] == ["b.har.gz", "a.har.gz"]  # index.csv time order
    batches = list(read_events("har-samples", config=Config()))
    assert [b.source.rsplit("/", 1)[-1] for b in batches] == ["b.har.gz", "a.har.gz"]
    assert sum(map(len, batches)) == 6
    shutil.rmtree(root / "har-samples")
    with pytest.raises(FileNotFoundError, match="har-samples"):
        read_events("har-samples")


def _real(name: str, monkeypatch):
    files = use_recording(name, monkeypatch)
    need(FORMATS[RECORDINGS[name].fmt].module)
    return files


def test_real_nasa_sessions_match_the_readme(monkeypatch):
    _real("nasa", monkeypatch)
    report = BadRecordReport()
    b = read_all("nasa", config=Config(), report=report)
    assert report.count == 0 and len(b) == 30_969
    # shared/data/real/README.md: host, "≈2,989 sessions at a 30-min gap"
    assert len(np.unique(b.session)) == 2_989
    assert all(s.rsplit("#", 1)[1].isdigit() for s in b.session[:100])


def test_real_openstack(monkeypatch):
    _real("openstack", monkeypatch)
    b = read_all("openstack", config=Config())
    assert len(b) == 1_017 and np.isfinite(b.latency_ms).all()
    assert (b.session != "").sum() > 0


def test_real_apache(monkeypatch):
    _real("apache", monkeypatch)
    report = BadRecordReport()
    b = read_all("apache", config=Config(), report=report)
    assert len(b) + report.count == 10_000 and report.count <= 5


def test_real_har_samples_all_42_files(monkeypatch):
    files = _real("har-samples", monkeypatch)
    assert len(files) == 42
    b = read_all("har-samples", config=Config(), report=BadRecordReport())
    assert len(b) == 3_234
    assert len({s.split("#")[0] for s in b.session}) == 42


def test_real_trainticket_spans_detected(monkeypatch):
    files = _real("trainticket-spans", monkeypatch)
    assert detect_format(files[0]) == "trainticket-spans"
    b = read_all("trainticket-spans", nrows=20_000, config=Config())
    assert len(b) > 100 and (b.session == "").all()  # auto never cuts sessions from traces
    assert set(b.extra) >= {"trace", "service"}


def test_data_root_is_found():
    try:
        assert data_root().name == "real"
    except FileNotFoundError:
        pytest.skip("needs the real recordings (shared/data/real), which are not in the "
                    "repository: set DRIFTBAYES_DATA=/path/to/data/real")
