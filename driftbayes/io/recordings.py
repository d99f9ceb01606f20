"""Named real recordings and the format-dispatching :func:`read_events`.

:func:`read_events` reads any supported file (or a registered recording), choosing the reader
from the file's **content** (its first 64 KiB, gzip decompressed), and passes every batch through
the :class:`~driftbayes.io.enrich.Enricher` when given a config (OpenAPI templates, personas,
sessions, redaction with the config's extra secret names).

========================= ======================================================================
format (``fmt=``)         reader; detected when
========================= ======================================================================
``jsonl``                 :func:`~driftbayes.io.jsonl.read_jsonl`; content starts with ``{``
                          (and is neither HAR nor a span export), or a ``.jsonl``/``.ndjson``
                          name
``har``                   :func:`~driftbayes.io.har.read_har`; a ``{"log": {...`` document
``access-log``            :func:`~driftbayes.io.accesslog.read_access_log` with
                          ``log_format="auto"``
``combined``, ``common``, the same with that ``log_format``; sniffed Common/Combined Log Format
``nasa-tsv``              lines or the NASA TSV header
``otlp``, ``jaeger``,     :mod:`driftbayes.io.spans`; sniffed by their keys / CSV header
``trainticket-spans``
``openstack``             :func:`~driftbayes.io.regexmap.read_regex_mapped` with the
                          :data:`~driftbayes.io.regexmap.OPENSTACK_NOVA` preset; nova WSGI lines
``regex``                 :func:`~driftbayes.io.regexmap.read_regex_mapped`; needs
                          ``mapping=RegexMapping(...)``
``csv``                   :func:`~driftbayes.io.csvmap.read_csv_mapped`; needs
                          ``mapping=CsvMapping(...)``
``mockforge-sqlite``      :func:`~driftbayes.io.mockforge_sqlite.read_mockforge_sqlite`; the
                          SQLite file magic
========================= ======================================================================

Reader modules are imported only when their format is used, so a missing optional dependency
breaks only its own format. When the content says nothing (an empty file), the file name's
suffix decides (``.jsonl``, ``.ndjson``, ``.har``, ``.log``, ``.db``/``.sqlite``).

The recordings live beside the project in ``shared/data/real/`` and are never copied into it
(several licences forbid redistribution); :func:`data_root` finds that folder.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import os
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from driftbayes.events import BadRecord, BadRecordError, BadRecordReport, EventBatch
from driftbayes.io.csvmap import CsvMapping
from driftbayes.io.jsonl import open_input
from driftbayes.io.prefetch import prefetched

__all__ = [
    "FORMATS",
    "RECORDINGS",
    "Format",
    "FormatUnavailableError",
    "Recording",
    "data_root",
    "detect_format",
    "open_recording",
    "read_events",
    "resolve_input",
]

_SNIFF_BYTES = 1 << 16
_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".har": "har", ".log": "access-log",
    ".db": "mockforge-sqlite", ".sqlite": "mockforge-sqlite", ".sqlite3": "mockforge-sqlite",
}


def data_root() -> Path:
    """Folder holding the real recordings (``.../shared/data/real``).

    ``$DRIFTBAYES_DATA`` wins when set (that folder, or its ``real`` subfolder if it has one);
    otherwise the first ``shared/data/real`` found walking up from the current directory, then
    from this package's location.

    Raises
    ------
    FileNotFoundError
        When no such folder exists.
    """
    env = os.environ.get("DRIFTBAYES_DATA")
    if env:
        root = Path(env).expanduser()
        return root / "real" if (root / "real").is_dir() else root
    starts = (Path.cwd().resolve(), Path(__file__).resolve().parent)
    for start in starts:
        for d in (start, *start.parents):
            for candidate in (
                d / "shared" / "data" / "real",
                d.parent / "shared" / "data" / "real",
            ):
                if candidate.is_dir():
                    return candidate
    raise FileNotFoundError(
        "cannot find the real recordings (shared/data/real) above "
        f"{starts[0]} or {starts[1]}; set DRIFTBAYES_DATA to that folder"
    )


# --------------------------------------------------------------------------------------------
# formats


class FormatUnavailableError(ImportError):
    """The reader module of a format cannot be imported (e.g. a missing dependency)."""


@dataclass(frozen=True)
class Format:
    """One input format: which reader function reads it and with which fixed options.

    Parameters
    ----------
    name : str
    module, function : str
        Where the reader is; imported on first use.
    description : str
    options : tuple of (str, value)
        Fixed keyword arguments (e.g. ``log_format``).
    preset : str, optional
        Attribute of ``module`` passed as the mapping (regex presets).
    mapping : type name, optional
        ``"CsvMapping"`` / ``"RegexMapping"`` when the reader needs ``mapping=``.
    persona_field : bool
        Whether the reader takes ``persona_field=``.
    """

    name: str
    module: str
    function: str
    description: str
    options: tuple[tuple[str, Any], ...] = ()
    preset: str | None = None
    mapping: str | None = None
    persona_field: bool = False

    def reader(self) -> Callable[..., Iterator[EventBatch]]:
        """The reader function (imports its module)."""
        return getattr(self._module(), self.function)

    def _module(self):
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise FormatUnavailableError(
                f"format {self.name!r} needs {self.module}, which cannot be imported: {exc}"
            ) from exc

    def open(self, path: str | PathLike[str], *, mapping: Any = None,
             persona_field: str = "persona", **options) -> Iterator[EventBatch]:
        """Stream ``path`` with this format's reader; ``options`` go to the reader."""
        fn = self.reader()
        kwargs = {**dict(self.options), **options}
        if self.persona_field:
            kwargs["persona_field"] = persona_field
        if self.preset is not None:
            mapping = mapping if mapping is not None else getattr(self._module(), self.preset)
        if self.preset is not None or self.mapping is not None:
            if mapping is None:
                raise ValueError(
                    f"{path}: the {self.name} format needs a {self.mapping} (mapping=...)")
            return fn(path, mapping, **kwargs)
        return fn(path, **kwargs)


#: Supported formats by name (``fmt=`` / ``driftbayes learn --format``).
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("jsonl", "driftbayes.io.jsonl", "read_jsonl",
               "canonical JSON Lines (one event object per line)", persona_field=True),
        Format("har", "driftbayes.io.har", "read_har",
               "HAR 1.2 (browsers, mitmproxy, Playwright)", persona_field=True),
        Format("access-log", "driftbayes.io.accesslog", "read_access_log",
               "web access log, format detected (Common/Combined, response time, NASA TSV)",
               options=(("log_format", "auto"),)),
        Format("combined", "driftbayes.io.accesslog", "read_access_log",
               "Combined Log Format", options=(("log_format", "combined"),)),
        Format("common", "driftbayes.io.accesslog", "read_access_log",
               "Common Log Format", options=(("log_format", "common"),)),
        Format("nasa-tsv", "driftbayes.io.accesslog", "read_access_log",
               "NASA-HTTP TSV access log", options=(("log_format", "nasa-tsv"),)),
        Format("otlp", "driftbayes.io.spans", "read_otlp_json",
               "OpenTelemetry OTLP JSON trace export (server spans)"),
        Format("jaeger", "driftbayes.io.spans", "read_jaeger_json",
               "Jaeger JSON trace export (server spans)"),
        Format("trainticket-spans", "driftbayes.io.spans", "read_trainticket_spans",
               "TrainTicket spans CSV (one request per trace)"),
        Format("openstack", "driftbayes.io.regexmap", "read_regex_mapped",
               "OpenStack nova-api WSGI log (regex preset)", preset="OPENSTACK_NOVA",
               mapping="RegexMapping"),
        Format("regex", "driftbayes.io.regexmap", "read_regex_mapped",
               "any line log through mapping=RegexMapping(...)", mapping="RegexMapping"),
        Format("csv", "driftbayes.io.csvmap", "read_csv_mapped",
               "CSV through mapping=CsvMapping(...)", mapping="CsvMapping"),
        Format("mockforge-sqlite", "driftbayes.io.mockforge_sqlite", "read_mockforge_sqlite",
               "MockForge recorder SQLite database"),
    )
}


def _format_list() -> str:
    return ", ".join(FORMATS)


# --------------------------------------------------------------------------------------------
# content sniffing


def _head(path: str | PathLike[str]) -> bytes:
    """Up to 64 KiB of the file's content, gzip decompressed (as far as it goes)."""
    with open(path, "rb") as raw:
        data = raw.read(_SNIFF_BYTES)
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        with open_input(path) as f:
            return f.read(_SNIFF_BYTES)
    except (EOFError, OSError, zlib.error):  # truncated or broken gzip: what inflates
        try:
            return zlib.decompressobj(wbits=31).decompress(data, _SNIFF_BYTES)
        except zlib.error:
            return b""


def _sniff_openstack(head: bytes) -> bool:
    from driftbayes.io.regexmap import OPENSTACK_NOVA

    lines = head.decode("utf-8", "replace").split("\n")[:-1][:50]
    lines = [ln for ln in lines if ln.strip()]
    hits = sum(1 for ln in lines if OPENSTACK_NOVA.regex.search(ln))
    return hits >= 1 and hits >= len(lines) // 10


def _sniff_jsonl(head: bytes) -> bool:
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{")


def _bool_sniffer(module: str, function: str, name: str) -> Callable[[bytes], str | None]:
    def sniff(head: bytes) -> str | None:
        return name if getattr(importlib.import_module(module), function)(head) else None
    return sniff


def _name_sniffer(module: str, function: str) -> Callable[[bytes], str | None]:
    def sniff(head: bytes) -> str | None:
        return getattr(importlib.import_module(module), function)(head)
    return sniff


#: Content sniffers in the order they are tried; each returns a format name or None. The
#: JSON-document formats (HAR, spans) come before the catch-all ``{`` of JSONL.
SNIFFERS: tuple[tuple[str, Callable[[bytes], str | None]], ...] = (
    ("mockforge-sqlite", _bool_sniffer("driftbayes.io.mockforge_sqlite", "sniff_sqlite",
                                       "mockforge-sqlite")),
    ("har", _bool_sniffer("driftbayes.io.har", "sniff_har", "har")),
    ("spans", _name_sniffer("driftbayes.io.spans", "sniff_spans")),
    ("jsonl", lambda head: "jsonl" if _sniff_jsonl(head) else None),
    ("access-log", _name_sniffer("driftbayes.io.accesslog", "sniff_access_log")),
    ("openstack", lambda head: "openstack" if _sniff_openstack(head) else None),
)


def detect_format(path: str | PathLike[str]) -> str | None:
    """The format name of a file from its content (then its suffix), or None.

    A sniffer whose reader module cannot be imported is skipped; an access-log dialect the
    sniffer names that is not itself a format (an nginx string, say) reads as ``access-log``.
    """
    head = _head(path)
    if head.strip():
        for _, sniff in SNIFFERS:
            try:
                name = sniff(head)
            except ImportError:
                continue
            except Exception:  # noqa: BLE001 - a sniffer is a guess; a failing guess is a no
                continue
            if name:
                return name if name in FORMATS else "access-log"
    name = str(path).lower().removesuffix(".gz")
    return next((fmt for suffix, fmt in _SUFFIXES.items() if name.endswith(suffix)), None)


# --------------------------------------------------------------------------------------------
# registered recordings


def _har_samples_order(files: list[Path]) -> list[Path]:
    """HAR samples in recording-time order (``index.csv``'s ``first_startedDateTime``)."""
    index = files[0].parent / "index.csv" if files else None
    if index is None or not index.exists():
        return files
    import pandas as pd

    with open(index, newline="", encoding="utf-8") as f:
        started = {row["file"]: row.get("first_startedDateTime", "") for row in csv.DictReader(f)}
    times = pd.to_datetime(pd.Series([started.get(p.name, "") for p in files]), utc=True,
                           format="ISO8601", errors="coerce")
    order = sorted(range(len(files)), key=lambda i: (pd.isna(times[i]),
                                                      times[i] if not pd.isna(times[i]) else 0,
                                                      files[i].name))
    return [files[i] for i in order]


@dataclass(frozen=True)
class Recording:
    """A registered real recording: where it is and how to read it.

    Parameters
    ----------
    name : str
    path : str
        Location relative to :func:`data_root`; may be a glob (``har-samples/*.har.gz``) for a
        recording made of several files, read one after the other.
    fmt : str
        A name in :data:`FORMATS`.
    description : str
        One line.
    mapping : CsvMapping or RegexMapping, optional
        For the formats that need one.
    order : callable, optional
        Sorts the files of a glob (default: by name).
    """

    name: str
    path: str
    fmt: str
    description: str
    mapping: Any = None
    order: Callable[[list[Path]], list[Path]] | None = field(default=None, compare=False)

    def resolve(self) -> Path:
        """Absolute path (or glob) of the recording."""
        return data_root() / self.path

    def files(self) -> list[Path]:
        """The recording's files, in reading order."""
        if not any(c in self.path for c in "*?["):
            return [self.resolve()]
        found = sorted(data_root().glob(self.path))
        return self.order(found) if self.order is not None and found else found

    def open(self, **options) -> Iterator[EventBatch]:
        """Stream the recording; ``options`` go to the reader (``strict``, ``report``, …)."""
        files = self.files()
        if not files or not all(p.exists() for p in files):
            missing = next((p for p in files if not p.exists()), self.resolve())
            raise FileNotFoundError(f"recording {self.name!r}: {missing} does not exist")
        fmt = FORMATS[self.fmt]
        if len(files) == 1:
            return fmt.open(files[0], mapping=self.mapping, **options)
        fmt.reader()  # fail now (not at the first batch) when the reader is unavailable
        return _chain(fmt, files, self.mapping, options)


def _chain(fmt: Format, files: list[Path], mapping: Any, options: dict) -> Iterator[EventBatch]:
    for path in files:
        yield from fmt.open(path, mapping=mapping, **options)


#: Registered recordings by name (`driftbayes demo --recording NAME`).
RECORDINGS: dict[str, Recording] = {
    r.name: r
    for r in (
        Recording(
            name="trainticket",
            path="trainticket-traces/requests.csv.gz",
            fmt="csv",
            mapping=CsvMapping(
                ts="start_unix_ns",
                ts_unit="ns",
                method="method",
                path=None,
                endpoint="endpoint",
                status=None,
                latency="duration_us",
                latency_unit="us",
            ),
            description=(
                "TrainTicket microservices: 27,364 requests in 12.3 h (2023-01-30), "
                "10 endpoints, latency only, 17 injected faults then a regime shift"
            ),
        ),
        Recording(
            name="trainticket-spans",
            path="trainticket-traces/spans.csv.gz",
            fmt="trainticket-spans",
            description=(
                "TrainTicket raw spans (1.04 M) read as one request per trace: the same "
                "27,364 requests as 'trainticket', with trace id and service"
            ),
        ),
        Recording(
            name="nasa",
            path="nasa-http-1995-08-01/nasa_19950801.tsv.gz",
            fmt="nasa-tsv",
            description=(
                "NASA-HTTP 1995-08-01: 30,969 requests of real people in 12.9 h, status and "
                "host (sessions at a 30-min gap), no latency"
            ),
        ),
        Recording(
            name="apache",
            path="elastic-apache-semicomplete/apache_logs.gz",
            fmt="combined",
            description=(
                "semicomplete.com Apache combined log: 10,000 requests over 3.5 days, status, "
                "IP + user agent, no latency"
            ),
        ),
        Recording(
            name="openstack",
            path="openstack-nova-api-sample/OpenStack_2k.log",
            fmt="openstack",
            description=(
                "OpenStack nova-api (loghub sample): 1,017 API requests in 15 min with latency, "
                "status and user"
            ),
        ),
        Recording(
            name="har-samples",
            path="har-samples/*.har.gz",
            fmt="har",
            order=_har_samples_order,
            description=(
                "42 HAR files (3,234 entries) from Chrome, Firefox, Safari, mitmproxy and "
                "WebPageTest, read in recording-time order"
            ),
        ),
    )
}


def open_recording(name: str, **options) -> Iterator[EventBatch]:
    """Stream the registered recording ``name`` (see :data:`RECORDINGS`), without enrichment.

    ``options`` (``strict``, ``report``, ``batch_size``, ``persona_field``) go to its reader.
    """
    try:
        recording = RECORDINGS[name]
    except KeyError:
        raise KeyError(f"unknown recording {name!r}; registered: {', '.join(RECORDINGS)}") from None
    return recording.open(**options)


# --------------------------------------------------------------------------------------------
# read_events


def _under_policy(batches: Iterator[EventBatch], policy) -> Iterator[EventBatch]:
    """Run every step of ``batches`` with ``policy`` as the current redaction policy."""
    from driftbayes.redact import redaction_policy

    while True:
        with redaction_policy(policy):
            try:
                batch = next(batches)
            except StopIteration:
                return
        yield batch


class _RedactingReport(BadRecordReport):
    """Collects bad records with their reasons through :func:`~driftbayes.redact.redact_text`
    (readers quote the offending input), forwarding each to the caller's report."""

    def __init__(self, target: BadRecordReport | None, policy):
        super().__init__()
        self.target = target
        self.policy = policy

    def redacted(self, bad: BadRecord) -> BadRecord:
        from driftbayes.redact import redact_text

        return BadRecord(bad.source, bad.line, bad.field, redact_text(bad.reason,
                                                                       policy=self.policy))

    def add(self, bad: BadRecord) -> None:
        # only the first few records keep their reason: redact just those (a file of a million
        # bad lines must not pay for a million redactions)
        target = self.target
        kept = len(self.first) < self.keep or (
            target is not None and (type(target) is not BadRecordReport
                                    or len(target.first) < target.keep))
        bad = self.redacted(bad) if kept else BadRecord(bad.source, bad.line, bad.field, "")
        super().add(bad)
        if target is not None:
            target.add(bad)


def _redacting(batches: Iterator[EventBatch], report: _RedactingReport, where: str,
               strict: bool) -> Iterator[EventBatch]:
    """Batches unchanged; a strict-mode error with its reason redacted; a broken gzip stream as
    one bad record (field ``gzip``, line 0) after the batches read before it; without a
    caller's report, one warning summarising the skipped records at the end (as the readers
    do)."""
    try:
        yield from batches
    except BadRecordError as exc:
        raise BadRecordError(report.redacted(exc.bad)) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # a truncated or corrupt gzip stream: what was read stays, the rest is one bad record
        bad = BadRecord(where, 0, "gzip", f"compressed stream is truncated or corrupt, reading "
                                          f"stopped: {exc}")
        if strict:
            raise BadRecordError(report.redacted(bad)) from None
        report.add(bad)
    if report.target is None and report.count:
        warnings.warn(f"{where}: {report.summary()}\n(pass report=BadRecordReport() to "
                      "collect them)", stacklevel=2)


def _mapping_format(mapping: Any) -> str:
    if isinstance(mapping, CsvMapping):
        return "csv"
    if type(mapping).__name__ == "RegexMapping":
        return "regex"
    raise TypeError(f"mapping must be a CsvMapping or a RegexMapping, got {type(mapping).__name__}")


def resolve_input(path_or_name: str | PathLike[str], *, fmt: str | None = None,
                  mapping: Any = None) -> tuple[str, Recording | None]:
    """How :func:`read_events` reads a source, decided before reading: the format's name and,
    for a registered recording's name, the recording (else None).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_events`.
    """
    key = os.fspath(path_or_name)
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"{key}: unknown format {fmt!r}. Supported formats: {_format_list()}")
    if fmt is None and isinstance(key, str) and key in RECORDINGS:
        return RECORDINGS[key].fmt, RECORDINGS[key]
    if fmt is None and mapping is not None:
        fmt = _mapping_format(mapping)
    if fmt is None:
        if key == "-":
            fmt = "jsonl"
        elif not Path(key).is_file():
            raise FileNotFoundError(
                f"{key}: no such file and not a registered recording "
                f"(registered: {', '.join(RECORDINGS)})"
            )
        else:
            fmt = detect_format(key)
    if fmt is None:
        raise ValueError(
            f"{key}: cannot tell its format. Supported: JSONL (.jsonl, .jsonl.gz, .ndjson, "
            f"or content starting with '{{'), HAR, access logs (Common/Combined, NASA TSV), "
            f"OTLP/Jaeger JSON, TrainTicket spans, OpenStack nova logs and MockForge SQLite, "
            f"detected from the content; CSV with a column mapping (mapping=CsvMapping(...))"
            f" and any line log with mapping=RegexMapping(...). Force one with fmt= / "
            f"--format: {_format_list()}. Registered recordings: {', '.join(RECORDINGS)}."
        )
    return fmt, None


def read_events(
    path_or_name: str | PathLike[str],
    *,
    fmt: str | None = None,
    mapping: Any = None,
    strict: bool = False,
    report: BadRecordReport | None = None,
    config=None,
    openapi=None,
    enricher=None,
    enrich: bool = True,
    persona_field: str | None = None,
    batch_size: int = 65536,
    prefetch: bool = True,
    **reader_options,
) -> Iterator[EventBatch]:
    """Stream events from a file or a registered recording, choosing the reader by content.

    Parameters
    ----------
    path_or_name : str or path-like
        A name in :data:`RECORDINGS`, a file path, or ``-`` (stdin; JSONL unless ``fmt``).
    fmt : str, optional
        A name in :data:`FORMATS` to force a format; otherwise a registered name uses its own
        format, a ``mapping`` means CSV or regex, and a file is sniffed (:func:`detect_format`).
    mapping : CsvMapping or RegexMapping, optional
        Field mapping for ``csv`` / ``regex`` input (or to override the ``openstack`` preset).
    strict, report, batch_size
        As for the readers: stop at the first bad record, collect skipped records, events per
        batch.
    config : Config, optional
        Enrich every batch (:class:`~driftbayes.io.enrich.Enricher`: personas, sessions,
        redaction policy) with this config (default: the default config, so batches get
        sessions and personas exactly as ``driftbayes learn`` gives them); its
        ``persona_field`` goes to the readers that take one.
    openapi : OpenApiTemplates, str or path-like, optional
        OpenAPI document for endpoint templates.
    enricher : Enricher, optional
        Use this enricher (and its config) instead of a new one: one enricher over several
        files keeps cutting sessions across them.
    enrich : bool
        False reads the records as they are (no sessions cut, no personas derived).
    persona_field : str, optional
        Overrides the config's ``persona_field`` (JSONL and HAR).
    prefetch : bool
        Read (and enrich) in a background thread, two batches ahead of the consumer, so
        parsing overlaps with learning (:func:`~driftbayes.io.prefetch.prefetched`).
    **reader_options
        More keyword arguments for the reader (``log_format=``, ``nrows=``, …).

    Raises
    ------
    FileNotFoundError
        No such file and no such recording.
    ValueError
        Unknown format, or the format cannot be told; the message names the file and lists the
        formats.
    FormatUnavailableError
        The format's reader module cannot be imported.
    """
    if enricher is None and enrich:
        from driftbayes.config import Config
        from driftbayes.io.enrich import Enricher

        enricher = Enricher(config if config is not None else Config(), openapi=openapi)
    cfg = enricher.config if enricher is not None else config
    if persona_field is None:
        persona_field = cfg.persona_field if cfg is not None else "persona"
    from driftbayes.redact import current_policy

    policy = enricher.policy if enricher is not None else current_policy()
    guard = _RedactingReport(report, policy)
    options = {"strict": strict, "report": guard, "batch_size": batch_size, **reader_options}
    key = os.fspath(path_or_name)
    fmt, recording = resolve_input(key, fmt=fmt, mapping=mapping)
    if recording is not None:
        if FORMATS[recording.fmt].persona_field:
            options["persona_field"] = persona_field
        batches = recording.open(**options)
    else:
        batches = FORMATS[fmt].open(path_or_name, mapping=mapping, persona_field=persona_field,
                                    **options)
    batches = _redacting(_under_policy(iter(batches), policy), guard, key, strict)
    if enricher is not None:
        batches = enricher.stream(batches)
    return prefetched(batches) if prefetch else batches
