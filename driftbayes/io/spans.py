"""Distributed-trace readers: OTLP JSON, Jaeger JSON and the TrainTicket spans CSV.

In OTLP and Jaeger exports a **server span is one request** (client and internal spans are
skipped without being checked). Fields of the canonical event:

============== ===============================================================================
field          from
============== ===============================================================================
``ts``         span start (OTLP ``startTimeUnixNano``, Jaeger ``startTime`` µs), epoch seconds
``latency_ms`` end − start (OTLP) or ``duration`` (Jaeger, µs)
``method``     ``http.request.method`` / ``http.method``, else the method word of a span name
               such as ``GET /users/{id}``, else ``"GET"``; upper-cased
``endpoint``   ``http.route`` when present and not a catch-all (contains ``*``), else the
               templated ``url.path`` / ``http.target`` / ``http.url`` / ``url.full``, else
               ``/<rpc.service>/<rpc.method>`` (gRPC; method ``POST``), else a span name
               that is a path (``/users/{id}`` or ``GET /users/{id}``). Route parameters
               ``:id`` and ``<int:id>`` become ``{id}``.
``status``     ``http.response.status_code`` / ``http.status_code``; missing → 0 (unknown)
``session``    a ``session.id`` attribute (span, then resource), else ``""`` — a trace id is
               *not* a session (one trace is one request)
``persona``    ``"default"``
============== ===============================================================================

``extra`` holds ``trace`` (trace id), ``service`` (``service.name`` / the Jaeger process
``serviceName``), ``client`` (``client.address`` / ``http.client_ip`` / ``net.peer.ip``),
``user_agent`` and ``query`` (from ``url.query`` or the target/URL, secrets redacted); absent
values are None.

A file holds one JSON document (compact or pretty-printed, loaded whole) or one document per
line (the collector ``file`` exporter; streamed). ``line`` is the physical line where the
document starts. A bad span (missing ids or times, end before start, a status that is not an
integer 100-599, no endpoint, not an object) is skipped whole as a
:class:`~driftbayes.events.BadRecord` whose field names the span by its 0-based position among
the document's spans, e.g. ``spans[3].endTimeUnixNano``; an unparseable document (truncated,
not UTF-8) is one bad record with field ``json``.

:func:`read_trainticket_spans` reads the TrainTicket CSV, where a request is a whole trace.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from os import PathLike

import numpy as np
import orjson
import pandas as pd

from driftbayes.events import (
    DEFAULT_PERSONA,
    BadRecord,
    BadRecordReport,
    EventBatch,
    handle_bad_records,
    reading,
)
from driftbayes.io.csvmap import csv_chunks
from driftbayes.io.jsonl import check_input, map_unique, open_input
from driftbayes.redact import redact_query
from driftbayes.templates import template_path, template_paths

__all__ = [
    "TRAINTICKET_COLUMNS",
    "read_jaeger_json",
    "read_otlp_json",
    "read_trainticket_spans",
    "sniff_spans",
]

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_NS = 10**9

_METHOD_KEYS = ("http.request.method", "http.method")
_PATH_KEYS = ("url.path", "http.target", "http.url", "url.full")
_STATUS_KEYS = ("http.response.status_code", "http.status_code")
_CLIENT_KEYS = ("client.address", "http.client_ip", "net.peer.ip")
_USER_AGENT_KEYS = ("user_agent.original", "http.user_agent")
_SERVER_KINDS = (2, "2", "SPAN_KIND_SERVER")

_NAME_ROUTE = re.compile(r"(?:([A-Za-z]+) )?(/\S*)")
_ROUTE_PARAM = re.compile(r":(\w+)|<(?:[^:<>]+:)?(\w+)>")

# One request row, in this order (see _build).
_ROW = ("line", "start_ns", "duration_ns", "method", "route", "path", "query", "status",
        "session", "trace", "service", "client", "user_agent")


# --------------------------------------------------------------------------------------------
# format sniffing


def sniff_spans(head: bytes) -> str | None:
    """Which span format the first bytes of a file are, if any.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (a few KiB is plenty); gzip-compressed bytes are inflated.

    Returns
    -------
    str or None
        ``"otlp"``, ``"jaeger"``, ``"trainticket-spans"`` or None.
    """
    if head[:2] == _GZIP_MAGIC:
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            return None
    head = head.removeprefix(_BOM).lstrip()
    first = head.split(b"\n", 1)[0].strip().split(b",")
    if first[:5] == [b"TraceID", b"SpanID", b"ParentID", b"PodName", b"OperationName"]:
        return "trainticket-spans"
    if not head.startswith(b"{"):
        return None
    if b'"resourceSpans"' in head:
        return "otlp"
    if b'"traceID"' in head and b'"spans"' in head:
        return "jaeger"
    return None


# --------------------------------------------------------------------------------------------
# small value helpers


def _as_int(value: object) -> int | None:
    """An integer from an int, an integral float or a decimal string; None otherwise."""
    if type(value) is int:
        return value
    if type(value) is float:
        return int(value) if value.is_integer() else None
    if type(value) is str:
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _any_value(value: object) -> object:
    """An OTLP ``AnyValue`` (``{"stringValue": "x"}``, ``{"intValue": "200"}``…) → its value."""
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "intValue", "doubleValue", "boolValue", "bytesValue"):
        if key in value:
            return value[key]
    if isinstance(value.get("arrayValue"), dict):
        return [_any_value(v) for v in value["arrayValue"].get("values") or []]
    if isinstance(value.get("kvlistValue"), dict):
        return _key_values(value["kvlistValue"].get("values"), _any_value)
    return None


def _key_values(items: object, convert: Callable[[object], object]) -> dict:
    """``[{"key": k, "value": v}, …]`` → ``{k: convert(v)}``, skipping malformed entries."""
    if not isinstance(items, list):
        return {}
    return {
        a["key"]: convert(a.get("value"))
        for a in items
        if isinstance(a, dict) and isinstance(a.get("key"), str)
    }


def _first(attrs: dict, keys: tuple[str, ...]) -> object:
    """The first of ``keys`` with a present, non-empty value in ``attrs``."""
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _route_template(route: str) -> str:
    """``/users/:id`` or ``/users/<int:id>`` → ``/users/{id}``, then the usual templating."""
    segments = []
    for s in route.split("?", 1)[0].split("/"):
        m = _ROUTE_PARAM.fullmatch(s)
        segments.append("{" + (m[1] or m[2]) + "}" if m else s)
    return template_path("/".join(segments))


def _http_row(attrs: dict, name: object, attr_field: str) -> tuple[tuple | None, tuple | None]:
    """``(method, route, path, query, status, client, user_agent)`` of a server span, or the
    ``(field, reason)`` that rejects it (``attr_field`` names the attribute list)."""
    status = 0
    raw_status = _first(attrs, _STATUS_KEYS)
    if raw_status is not None:
        status = _as_int(raw_status)
        if status is None or not 100 <= status <= 599:
            key = next(k for k in _STATUS_KEYS if attrs.get(k) is raw_status)
            return None, (f"{attr_field}[{key}]",
                          f"not an integer status in 100-599: {raw_status!r}")
    method = _text(_first(attrs, _METHOD_KEYS))
    route = _text(attrs.get("http.route"))
    if route is not None and "*" in route:
        route = None  # catch-all routes say nothing about the endpoint
    path = _text(_first(attrs, _PATH_KEYS))
    query = _text(attrs.get("url.query"))
    if path is not None and query is None:
        query = path.partition("?")[2].partition("#")[0] or None
    name_route = _NAME_ROUTE.fullmatch(name) if isinstance(name, str) else None
    if route is None and path is None:
        if attrs.get("rpc.service") and attrs.get("rpc.method"):  # gRPC: POST /Service/Method
            route = f"/{attrs['rpc.service']}/{attrs['rpc.method']}"
            method = method or "POST"
        elif name_route is not None and "*" not in name_route[2]:
            route = name_route[2]
        else:
            return None, (f"{attr_field}[http.route]",
                          "no http.route, url.path, http.target or http.url, "
                          f"and the span name is not a path: {name!r}")
    if method is None and name_route is not None:
        method = name_route[1]
    client = _text(_first(attrs, _CLIENT_KEYS))
    user_agent = _text(_first(attrs, _USER_AGENT_KEYS))
    return (method, route, path, query, status, client, user_agent), None


def _otlp_span(span: dict) -> tuple[tuple | None, tuple | None]:
    """``(trace, start_ns, duration_ns)`` of an OTLP span, or the ``(field, reason)``."""
    trace, span_id = span.get("traceId"), span.get("spanId")
    if not isinstance(trace, str) or not trace:
        return None, ("traceId", "missing")
    if not isinstance(span_id, str) or not span_id:
        return None, ("spanId", "missing")
    start, end = _as_int(span.get("startTimeUnixNano")), _as_int(span.get("endTimeUnixNano"))
    if start is None or start <= 0:
        return None, ("startTimeUnixNano",
                      f"not a positive integer: {span.get('startTimeUnixNano')!r}")
    if end is None or end <= 0:
        return None, ("endTimeUnixNano",
                      f"not a positive integer: {span.get('endTimeUnixNano')!r}")
    if end < start:
        return None, ("endTimeUnixNano", f"before startTimeUnixNano ({end} < {start})")
    return (trace, start, end - start), None


def _jaeger_span(span: dict) -> tuple[tuple | None, tuple | None]:
    """``(trace, start_ns, duration_ns)`` of a Jaeger span, or the ``(field, reason)``."""
    trace, span_id = span.get("traceID"), span.get("spanID")
    if not isinstance(trace, str) or not trace:
        return None, ("traceID", "missing")
    if not isinstance(span_id, str) or not span_id:
        return None, ("spanID", "missing")
    start, duration = _as_int(span.get("startTime")), _as_int(span.get("duration"))
    if start is None or start <= 0:
        return None, ("startTime", f"not a positive integer: {span.get('startTime')!r}")
    if duration is None or duration < 0:
        return None, ("duration", f"not an integer >= 0: {span.get('duration')!r}")
    return (trace, start * 1000, duration * 1000), None


# --------------------------------------------------------------------------------------------
# OTLP and Jaeger documents → request rows


def _otlp_rows(doc: object, line: int, source: str) -> tuple[list[tuple], list[BadRecord]]:
    """Request rows and bad records of one OTLP JSON document (``resourceSpans``)."""
    rows: list[tuple] = []
    bad: list[BadRecord] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
        bad.append(BadRecord(source, line, "resourceSpans",
                             "expected an OTLP document with a 'resourceSpans' array"))
        return rows, bad
    k = -1
    for i, rs in enumerate(doc["resourceSpans"]):
        if not isinstance(rs, dict):
            bad.append(BadRecord(source, line, f"resourceSpans[{i}]", "expected an object"))
            continue
        resource = rs.get("resource")
        res_attrs = _key_values(
            resource.get("attributes") if isinstance(resource, dict) else None, _any_value
        )
        service = _text(res_attrs.get("service.name"))
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
        for scope in scopes if isinstance(scopes, list) else []:
            spans = scope.get("spans") if isinstance(scope, dict) else None
            for span in spans if isinstance(spans, list) else []:
                k += 1
                if not isinstance(span, dict):
                    bad.append(BadRecord(source, line, f"spans[{k}]", "expected a span object"))
                    continue
                if span.get("kind") not in _SERVER_KINDS:
                    continue
                attrs = _key_values(span.get("attributes"), _any_value)
                times, why = _otlp_span(span)
                if why is None:
                    http, why = _http_row(attrs, span.get("name"), "attributes")
                if why is not None:
                    bad.append(BadRecord(source, line, f"spans[{k}].{why[0]}", why[1]))
                    continue
                session = attrs.get("session.id") or res_attrs.get("session.id")
                rows.append(_row(line, times, http, session, service))
    return rows, bad


def _jaeger_rows(doc: object, line: int, source: str) -> tuple[list[tuple], list[BadRecord]]:
    """Request rows and bad records of one Jaeger JSON document (``{"data": [trace, …]}``)."""
    rows: list[tuple] = []
    bad: list[BadRecord] = []
    traces = doc.get("data") if isinstance(doc, dict) else None
    if traces is None and isinstance(doc, dict) and isinstance(doc.get("spans"), list):
        traces = [doc]  # a single trace object
    if not isinstance(traces, list):
        bad.append(BadRecord(source, line, "data",
                             "expected a Jaeger document with a 'data' array of traces"))
        return rows, bad
    k = -1
    for i, trace_obj in enumerate(traces):
        if not isinstance(trace_obj, dict):
            bad.append(BadRecord(source, line, f"data[{i}]", "expected a trace object"))
            continue
        processes = trace_obj.get("processes")
        processes = processes if isinstance(processes, dict) else {}
        spans = trace_obj.get("spans")
        for span in spans if isinstance(spans, list) else []:
            k += 1
            if not isinstance(span, dict):
                bad.append(BadRecord(source, line, f"spans[{k}]", "expected a span object"))
                continue
            tags = _key_values(span.get("tags"), lambda v: v)
            if tags.get("span.kind") != "server":
                continue
            times, why = _jaeger_span(span)
            if why is None:
                http, why = _http_row(tags, span.get("operationName"), "tags")
            if why is not None:
                bad.append(BadRecord(source, line, f"spans[{k}].{why[0]}", why[1]))
                continue
            process = span.get("process")
            if not isinstance(process, dict):
                process = processes.get(span.get("processID"))
            process = process if isinstance(process, dict) else {}
            session = tags.get("session.id")
            if session is None:
                session = _key_values(process.get("tags"), lambda v: v).get("session.id")
            rows.append(_row(line, times, http, session, _text(process.get("serviceName"))))
    return rows, bad


def _row(line: int, times: tuple, http: tuple, session: object, service: str | None) -> tuple:
    """One request row in :data:`_ROW` order."""
    trace, start, duration = times
    method, route, path, query, status, client, user_agent = http
    return (line, start, duration, method, route, path, query, status, _text(session), trace,
            service, client, user_agent)


def _build(rows: list[tuple], source: str) -> EventBatch:
    """An :class:`EventBatch` from request rows (vectorised conversions)."""
    col = {}
    for name, values in zip(_ROW, zip(*rows), strict=True):
        col[name] = np.empty(len(rows), dtype=object)
        col[name][:] = values
    start = col["start_ns"].astype(np.int64)
    whole, frac = np.divmod(start, _NS)
    method = col["method"]
    method[method == None] = "GET"  # noqa: E711 - elementwise
    route = col["route"]
    has_route = route != None  # noqa: E711
    endpoint = np.empty(len(rows), dtype=object)
    if has_route.any():
        endpoint[has_route] = map_unique(route[has_route], _route_template)
    if not has_route.all():
        endpoint[~has_route] = template_paths(col["path"][~has_route])
    query = col["query"]
    has_query = query != None  # noqa: E711
    if has_query.any():
        query[has_query] = map_unique(query[has_query], redact_query)
    session = col["session"]
    session[session == None] = ""  # noqa: E711
    return EventBatch(
        ts=whole + frac / _NS,
        method=map_unique(method, str.upper),
        endpoint=endpoint,
        status=col["status"].astype(np.int32),
        latency_ms=col["duration_ns"].astype(np.float64) / 1e6,
        persona=np.full(len(rows), DEFAULT_PERSONA, dtype=object),
        session=session,
        line=col["line"].astype(np.int64),
        source=source,
        extra={k: col[k] for k in ("trace", "service", "client", "user_agent", "query")},
    )


# --------------------------------------------------------------------------------------------
# documents: one per file or one per line


def _json_bad(source: str, line: int, error: Exception | None) -> BadRecord:
    if error is None:
        return BadRecord(source, line, "json", "expected a JSON object")
    return BadRecord(source, line, "json", f"invalid JSON: {error}")


def _documents(
    path: str | PathLike[str], source: str
) -> Iterator[tuple[int, object, BadRecord | None]]:
    """``(line, document, None)`` or ``(line, None, bad)`` for each JSON document of the file.

    If the first non-blank line is a whole JSON object, every line is one document (streamed);
    otherwise the whole file is one document. A file that fails to parse as one document but
    has lines that are JSON objects is read one document per line after all (its bad lines
    reported), so one broken line does not lose the rest.
    """
    with open_input(path) as f:
        lineno = 0
        for raw in f:
            lineno += 1
            if lineno == 1:
                raw = raw.removeprefix(_BOM)
            if raw.strip():
                break
        else:
            return
        first = lineno
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):  # one document per line
            yield first, doc, None
            for raw in f:
                lineno += 1
                if not raw.strip():
                    continue
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    yield lineno, None, _json_bad(source, lineno, exc)
                    continue
                if isinstance(doc, dict):
                    yield lineno, doc, None
                else:
                    yield lineno, None, _json_bad(source, lineno, None)
            return
        data = raw + f.read()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        error: Exception | None = exc
    else:
        if isinstance(doc, dict):
            yield first, doc, None
        else:
            yield first, None, _json_bad(source, first, None)
        return
    # not one document: one per line if any line is an object, else one bad document
    lines = data.split(b"\n")
    parsed: list[tuple[int, object, Exception | None]] = []
    for i, raw in enumerate(lines):
        if raw.strip():
            try:
                parsed.append((first + i, orjson.loads(raw), None))
            except orjson.JSONDecodeError as exc:
                parsed.append((first + i, None, exc))
    if not any(isinstance(doc, dict) for _, doc, _ in parsed):
        yield first, None, _json_bad(source, first, error)
        return
    for n, doc, exc in parsed:
        if isinstance(doc, dict):
            yield n, doc, None
        else:
            yield n, None, _json_bad(source, n, exc)


def _iter_documents(
    path: str | PathLike[str],
    parse: Callable[[object, int, str], tuple[list[tuple], list[BadRecord]]],
    batch_size: int,
    strict: bool,
    report: BadRecordReport | None,
) -> Iterator[EventBatch]:
    with reading(path, report) as scope:
        source, report = scope
        rows: list[tuple] = []
        for line, doc, bad_doc in _documents(path, source):
            if bad_doc is None:
                new, bad = parse(doc, line, source)
                rows += new
            else:
                bad = [bad_doc]
            handle_bad_records(bad, strict=strict, report=report)
            while len(rows) >= batch_size:
                batch = scope.accept(_build(rows[:batch_size], source), [], strict=strict)
                del rows[:batch_size]
                if len(batch):
                    yield batch
        if rows:
            batch = scope.accept(_build(rows, source), [], strict=strict)
            if len(batch):
                yield batch


def read_otlp_json(
    path: str | PathLike[str],
    *,
    batch_size: int = 65536,
    strict: bool = False,
    report: BadRecordReport | None = None,
) -> Iterator[EventBatch]:
    """Stream the server spans of an OTLP JSON export as request events.

    Parameters
    ----------
    path : str or path-like
        OTLP/HTTP JSON (``{"resourceSpans": [...]}``): one document, or one per line as the
        collector ``file`` exporter writes; gzip is detected; ``-`` reads stdin.
    batch_size : int
        Events per batch (at most).
    strict : bool
        Raise :class:`~driftbayes.events.BadRecordError` at the first bad span or document.
    report : BadRecordReport, optional
        Collects skipped spans. Without one, a warning summarises them at the end.

    Yields
    ------
    EventBatch
        One event per server span (``kind`` 2 / ``"SPAN_KIND_SERVER"``), in file order; see the
        module docstring for the field rules and ``extra``.
    """
    check_input(path, batch_size)
    return _iter_documents(path, _otlp_rows, batch_size, strict, report)


def read_jaeger_json(
    path: str | PathLike[str],
    *,
    batch_size: int = 65536,
    strict: bool = False,
    report: BadRecordReport | None = None,
) -> Iterator[EventBatch]:
    """Stream the server spans of a Jaeger JSON export (UI download / query API) as events.

    Parameters
    ----------
    path : str or path-like
        ``{"data": [{"traceID", "spans": [...], "processes": {...}}, ...]}`` (or one such
        document per line, or a single trace object); gzip is detected; ``-`` reads stdin.
    batch_size, strict, report
        As for :func:`read_otlp_json`.

    Yields
    ------
    EventBatch
        One event per span tagged ``span.kind = server``: ``ts`` = ``startTime`` (µs),
        ``latency_ms`` = ``duration`` (µs) / 1000; tags follow the OTLP attribute rules and
        ``service`` is the span's process ``serviceName``.
    """
    check_input(path, batch_size)
    return _iter_documents(path, _jaeger_rows, batch_size, strict, report)


# --------------------------------------------------------------------------------------------
# TrainTicket spans CSV: one request per trace

#: Columns of the TrainTicket spans CSV (TraStrainer artifact), in file order.
TRAINTICKET_COLUMNS = ("TraceID", "SpanID", "ParentID", "PodName", "OperationName",
                       "StartTimeUnixNano", "EndTimeUnixNano", "Duration")
_REQUIRED_TEXT = ("TraceID", "SpanID", "ParentID", "OperationName")
_POD_SUFFIX = re.compile(r"-[a-z0-9]{1,10}-[a-z0-9]{5}$")  # ReplicaSet hash + pod id


def _service_of_pod(pod: object) -> object:
    """``ts-travel-service-6f6cfc45b-d9pnv`` → ``ts-travel-service``."""
    return _POD_SUFFIX.sub("", pod) if isinstance(pod, str) else None


def _ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values, valid mask) of an object array of text cells; invalid entries are 0."""
    try:  # fast path: every cell is a decimal integer
        return values.astype(np.int64), np.ones(len(values), dtype=bool)
    except (TypeError, ValueError, OverflowError):
        pass
    series = pd.Series(values, dtype=object)
    as_float = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(as_float) & (as_float == np.floor(as_float))
    out = np.zeros(len(values), dtype=np.int64)
    if ok.any():  # parse the good cells again so large integers stay exact
        out[ok] = pd.to_numeric(series[ok]).to_numpy().astype(np.int64)
    return out, ok


def _startswith(values: np.ndarray, prefix: str) -> np.ndarray:
    """Vectorised ``str.startswith`` over an object array with few distinct values."""
    codes, uniques = pd.factorize(values)
    hits = np.array([isinstance(u, str) and u.startswith(prefix) for u in uniques], dtype=bool)
    return hits[codes] if len(uniques) else np.zeros(len(values), dtype=bool)


def _tt_spans(
    chunk: pd.DataFrame, lines: np.ndarray, source: str
) -> tuple[pd.DataFrame, list[BadRecord]]:
    """The valid spans of a chunk as a typed frame, and the bad rows (first bad column wins)."""
    n = len(chunk)
    cells = {c: chunk[c].to_numpy(dtype=object) for c in TRAINTICKET_COLUMNS}
    missing = {c: pd.isna(v) for c, v in cells.items()}
    blank = np.logical_and.reduce(list(missing.values()))
    reason = np.full(n, None, dtype=object)

    def flag(column: str, mask: np.ndarray, why: Callable[[object], str]) -> None:
        for i in np.flatnonzero(mask & ~blank & (reason == None)):  # noqa: E711
            reason[i] = (column, why(cells[column][i]))

    for column in _REQUIRED_TEXT:
        flag(column, missing[column], lambda v: "missing")
    start, ok_start = _ints(cells["StartTimeUnixNano"])
    end, ok_end = _ints(cells["EndTimeUnixNano"])
    duration, ok_dur = _ints(cells["Duration"])

    def not_int(v: object) -> str:
        return "missing" if pd.isna(v) else f"not a positive integer: {v!r}"

    flag("StartTimeUnixNano", ~ok_start | (start <= 0), not_int)
    flag("EndTimeUnixNano", ~ok_end | (end <= 0), not_int)
    flag("EndTimeUnixNano", end < start, lambda v: f"before StartTimeUnixNano: {v!r}")
    flag("Duration", ~ok_dur | (duration < 0),
         lambda v: "missing" if pd.isna(v) else f"not an integer >= 0: {v!r}")
    has_reason = reason != None  # noqa: E711
    bad = [BadRecord(source, int(lines[i]), *reason[i]) for i in np.flatnonzero(has_reason)]
    good = ~blank & ~has_reason
    op = cells["OperationName"][good]
    pod = cells["PodName"][good]
    pod[missing["PodName"][good]] = None
    spans = pd.DataFrame({
        "trace": cells["TraceID"][good],
        "op": op,
        "pod": pod,
        "start": start[good],
        "end": end[good],
        "duration": duration[good],
        "line": lines[good],
        "root": cells["ParentID"][good] == "root",
        "api": _startswith(op, "/api"),
        "client": _startswith(op, "HTTP "),
    })
    return spans, bad


def _earliest(frame: pd.DataFrame) -> pd.DataFrame:
    """Per trace, the row with the earliest ``start`` (then the lowest ``line``)."""
    return frame.sort_values(["start", "line"], kind="stable").drop_duplicates("trace")


class _TraceAssembler:
    """Per-trace state of the TrainTicket reader, bounded to the traces still open.

    Only the few spans that matter are kept: the earliest root, the earliest ``/api…`` server
    span and the earliest ``HTTP <METHOD>`` client span of each open trace, and per trace the
    latest span start and first line seen.
    """

    def __init__(self, source: str, horizon_ns: int) -> None:
        self.source = source
        self.horizon = horizon_ns
        self.watermark = np.iinfo(np.int64).min  # latest span start seen
        empty = pd.DataFrame({"trace": pd.Series(dtype=object), "start": pd.Series(dtype=np.int64),
                              "line": pd.Series(dtype=np.int64)})
        self.roots = empty.assign(end=pd.Series(dtype=np.int64),
                                  duration=pd.Series(dtype=np.int64))
        self.api = empty.assign(op=pd.Series(dtype=object), pod=pd.Series(dtype=object))
        self.client = empty.assign(op=pd.Series(dtype=object))
        self.seen = pd.DataFrame({"last": pd.Series(dtype=np.int64),
                                  "first_line": pd.Series(dtype=np.int64)},
                                 index=pd.Index([], dtype=object, name="trace"))
        self.done = pd.Series(dtype=np.int64, index=pd.Index([], dtype=object))  # trace → end

    def add(self, spans: pd.DataFrame) -> None:
        """Merge a chunk of valid spans (stragglers of emitted traces are dropped)."""
        if len(self.done):
            spans = spans[~spans["trace"].isin(self.done.index)]
        if not len(spans):
            return
        self.watermark = max(self.watermark, int(spans["start"].max()))
        roots = spans.loc[spans["root"].to_numpy(), self.roots.columns]
        api = spans.loc[spans["api"].to_numpy(), self.api.columns]
        client = spans.loc[spans["client"].to_numpy(), self.client.columns]
        self.roots = _earliest(pd.concat([self.roots, roots], ignore_index=True))
        self.api = _earliest(pd.concat([self.api, api], ignore_index=True))
        self.client = _earliest(pd.concat([self.client, client], ignore_index=True))
        seen = spans.groupby("trace", sort=False).agg(last=("start", "max"),
                                                      first_line=("line", "min"))
        self.seen = pd.concat([self.seen, seen]).groupby(level=0, sort=False).agg(
            {"last": "max", "first_line": "min"})

    def flush(self, final: bool = False) -> tuple[EventBatch | None, list[BadRecord]]:
        """Events of the finished traces in start order, and the traces given up on.

        A rooted trace is finished when its root ended more than the horizon before the
        watermark (and no unfinished trace started earlier); a rootless trace is given up when
        its latest span started more than the horizon before it. ``final`` finishes all.
        """
        cutoff = np.iinfo(np.int64).max if final else self.watermark - self.horizon
        roots = self.roots
        complete = roots["end"].to_numpy() < cutoff
        if not complete.all():  # hold back traces that started after an unfinished one
            start = roots["start"].to_numpy()
            complete &= start < start[~complete].min()
        out = roots[complete].sort_values(["start", "line"], kind="stable")
        self.roots = roots[~complete]
        bad: list[BadRecord] = []
        # rootless traces that will not get a root any more
        stale = self.seen.index[(self.seen["last"] < cutoff).to_numpy()
                                & ~self.seen.index.isin(self.roots["trace"])
                                & ~self.seen.index.isin(out["trace"])]
        for trace, line in self.seen.loc[stale, "first_line"].items():
            bad.append(BadRecord(self.source, int(line), "ParentID",
                                 f"trace {trace} has no root span (ParentID 'root')"))
        traces = out["trace"].to_numpy(dtype=object)
        api = self.api.set_index("trace").reindex(traces)
        client = self.client.set_index("trace").reindex(traces)
        closed = pd.Index(traces).append(stale)
        if len(closed):
            self.api = self.api[~self.api["trace"].isin(closed)]
            self.client = self.client[~self.client["trace"].isin(closed)]
            self.seen = self.seen[~self.seen.index.isin(closed)]
        keep = self.done >= self.watermark - 2 * self.horizon
        self.done = pd.concat([self.done[keep],
                               pd.Series(out["end"].to_numpy(), index=traces)])
        if not len(out):
            return None, bad
        return self._events(out, api, client, bad), bad

    def _events(self, out: pd.DataFrame, api: pd.DataFrame, client: pd.DataFrame,
                bad: list[BadRecord]) -> EventBatch | None:
        """Events of finished traces (``api``/``client`` aligned with ``out``); a trace
        without an ``/api…`` span is added to ``bad``."""
        traces = out["trace"].to_numpy(dtype=object)
        has_ep = api["op"].notna().to_numpy()
        for trace, line in zip(traces[~has_ep], out["line"].to_numpy()[~has_ep], strict=True):
            bad.append(BadRecord(self.source, int(line), "OperationName",
                                 f"trace {trace} has no '/api…' server span"))
        if not has_ep.any():
            return None
        out, api, client = out[has_ep], api[has_ep], client[has_ep]
        method = client["op"].to_numpy(dtype=object, na_value="HTTP GET")
        whole, frac = np.divmod(out["start"].to_numpy(dtype=np.int64), _NS)
        n = len(out)
        return EventBatch(
            ts=whole + frac / _NS,
            method=map_unique(method, lambda m: m[5:].strip().upper()),
            endpoint=template_paths(api["op"].to_numpy(dtype=object)),
            status=np.zeros(n, dtype=np.int32),
            latency_ms=out["duration"].to_numpy(dtype=np.float64) / 1e3,
            persona=np.full(n, DEFAULT_PERSONA, dtype=object),
            session=np.full(n, "", dtype=object),
            line=out["line"].to_numpy(dtype=np.int64),
            source=self.source,
            extra={"trace": traces[has_ep],
                   "service": map_unique(api["pod"].to_numpy(dtype=object), _service_of_pod)},
        )


def read_trainticket_spans(
    path: str | PathLike[str],
    *,
    batch_size: int = 131072,
    strict: bool = False,
    report: BadRecordReport | None = None,
    nrows: int | None = None,
    horizon_s: float = 120.0,
) -> Iterator[EventBatch]:
    """Stream the TrainTicket spans CSV as one request event per trace.

    Each trace becomes one event at its **root** span (``ParentID == "root"``, the gateway
    entry): ``ts`` = root start, ``latency_ms`` = root ``Duration`` (µs) / 1000, ``endpoint`` =
    the earliest server span of the trace whose ``OperationName`` starts with ``/api`` (the
    business endpoint behind the gateway, a route template), ``method`` = the earliest
    ``HTTP <METHOD>`` client span (``"GET"`` if none), ``status`` = 0 (not recorded).
    ``extra``: ``trace`` (TraceID) and ``service`` (the endpoint span's ``PodName`` without the
    replica suffix, e.g. ``ts-travel-service``). This reproduces the derived
    ``requests.csv.gz`` of the recording trace by trace.

    Parameters
    ----------
    path : str or path-like
        CSV with the header :data:`TRAINTICKET_COLUMNS` (gzip detected; ``-`` reads stdin).
    batch_size : int
        Span rows read per chunk; each chunk yields at most one batch of the traces finished.
    strict : bool
        Raise :class:`~driftbayes.events.BadRecordError` at the first bad row or trace.
    report : BadRecordReport, optional
        Collects skipped rows (``field`` = the CSV column, ``"csv"`` for a line with too many
        fields) and traces (``ParentID``: no root span; ``OperationName``: no ``/api`` span).
        Without one, a warning summarises them at the end.
    nrows : int, optional
        Read only the first ``nrows`` data rows (traces cut off at the end are still emitted).
    horizon_s : float
        Spans of a trace may be spread through the file (the file is per-minute exports
        joined, in TrainTicket up to ~65 s out of order). A trace is emitted once its root
        ended ``horizon_s`` before the latest span start read so far; later spans of it are
        ignored. Memory holds only the traces of the last ``horizon_s`` or so.

    Yields
    ------
    EventBatch
        Events in root start order (exactly so while the file's disorder stays below
        ``horizon_s``); ``line`` is the root span's physical line (header = line 1).
    """
    check_input(path, batch_size)
    if not horizon_s > 0:
        raise ValueError(f"horizon_s must be > 0, got {horizon_s}")
    return _iter_trainticket(path, batch_size, strict, report, nrows, horizon_s)


def _iter_trainticket(
    path: str | PathLike[str],
    batch_size: int,
    strict: bool,
    report: BadRecordReport | None,
    nrows: int | None,
    horizon_s: float,
) -> Iterator[EventBatch]:
    with reading(path, report) as scope:
        source = scope.source
        traces = _TraceAssembler(source, int(horizon_s * _NS))
        with open_input(path) as f:
            for chunk, lines, bad, final in csv_chunks(f, source, batch_size, dtype=object,
                                                       nrows=nrows):
                if not final:
                    missing = [c for c in TRAINTICKET_COLUMNS if c not in chunk.columns]
                    if missing:
                        raise ValueError(f"{source}: column(s) {missing} not in the header "
                                         f"{list(chunk.columns)}")
                    spans, row_bad = _tt_spans(chunk, lines, source)
                    bad = bad + row_bad
                    traces.add(spans)
                batch, trace_bad = traces.flush(final=final)
                bad.sort(key=lambda b: b.line)
                bad = bad + sorted(trace_bad, key=lambda b: b.line)
                if batch is None:
                    handle_bad_records(bad, strict=strict, report=scope.report)
                    continue
                batch = scope.accept(batch, bad, strict=strict)
                if len(batch):
                    yield batch
