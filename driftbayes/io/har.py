"""HAR 1.2 reader (Chrome, Firefox, Safari, mitmproxy, WebPageTest, Playwright, Firebug).

A HAR file is one JSON document; its ``log.entries`` array is streamed item by item with
`ijson <https://pypi.org/project/ijson/>`_, so memory stays bounded by one entry plus one batch
of small per-event tuples (bodies, cookies and timings are dropped as soon as an entry is read).
Without ijson the whole document is decoded with orjson, for files up to 256 MiB.

One event per entry:

- ``ts``: ``startedDateTime`` (ISO 8601, any offset) → epoch seconds UTC.
- ``method``: ``request.method`` upper-cased; missing → ``GET``.
- ``endpoint``: template of the URL path (scheme, host, query and fragment dropped).
- ``status``: ``response.status``; 0 stays 0 (see below); no response or no status → 0.
- ``latency_ms``: ``time``; when it is missing or negative, the sum of the non-negative
  ``timings`` ``blocked``, ``dns``, ``connect``, ``send``, ``wait`` and ``receive`` (``-1`` = not
  applicable; ``ssl`` is part of ``connect`` and not added again); NaN when neither is
  recorded, and always NaN for status 0. A browser-cache hit recorded with ``time`` 0 (Firefox)
  keeps latency 0.
- ``persona``: entry field ``<persona_field>`` or ``_<persona_field>`` (HAR custom field), else
  request header ``x-<persona_field>`` or ``x-mockforge-persona``, else ``"default"``.
- ``session``: ``har:<file name>#<pageref>``, or ``har:<file name>`` for entries without
  pageref.
- ``line``: 1-based index of the entry in ``log.entries``.
- ``extra["client"]``: same as ``session`` (one page load = one client = one session).
- ``extra["host"]``: URL host, lower case, with port, without ``user:password@``.
- ``extra["query"]``: query string, redacted (:func:`~driftbayes.redact.redact_query`).
- ``extra["header:<name>"]``: request headers, names lower-cased, values through
  :func:`~driftbayes.redact.redact_headers` and, when URL-like (``?`` or ``@``),
  :func:`~driftbayes.redact.redact_url`; repeated headers are joined with ``", "``; names that
  are not HTTP tokens (HTTP/2 pseudo-headers such as ``:path``, WebPageTest's request line)
  are dropped; ``None`` where an entry lacks the header.
- ``extra["user_agent"]``: the ``user-agent`` request header (when any entry has one).
- ``extra["response_body"]`` / ``extra["response_content_type"]``: ``response.content.text``
  (base64 decoded when so marked) through :func:`~driftbayes.bodies.redact_body` — text only,
  redacted, at most 64 KiB — for the last entry of each method × template × status in a
  batch (the learner keeps the latest per endpoint × status; the mock serves it).

Cookies, request bodies, response headers and ``queryString`` (the URL's query is used) are
not kept.

**Status 0** is what browsers and mitmproxy write for requests that got no response (aborted,
blocked by the client, cancelled, failed connection, incomplete flow). Such an entry is kept, so
request frequency and page-load sequences see it, with ``status = 0`` ("not recorded": the
status model is untouched) and ``latency_ms = NaN``: its ``time`` measures how long the client
waited before giving up, not how long the server took to answer, so it would bias the latency
models (and is often 0). Its ``time`` is therefore not validated either.

``pageref`` values such as ``page_1`` repeat across files, so the session is qualified by the
file name: two HAR files never share a session.

Bad entries (not an object, no ``request``, no or non-HTTP ``request.url``, unparseable
``startedDateTime``, a status outside 0 and 100–599, a negative ``time`` without usable
``timings``) are rejected whole. Their :class:`~driftbayes.events.BadRecord` has ``line`` = the
1-based entry index and a ``field`` such as ``entries[].startedDateTime`` (the entry number is
the line, so the report counts by field across entries). A file that ends early (truncated or
invalid JSON after some entries) yields the entries before the break and reports one bad record
with field ``json`` at the entry where parsing stopped; it never raises in lenient mode. A JSON
document without a ``log.entries`` array is reported once (field ``log.entries``, line 0).
Malformed ``headers`` items are ignored (headers are optional context, not event fields).
Entries are yielded in file order, which HAR does not guarantee to be time order.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import zlib
from collections.abc import Iterator
from os import PathLike
from urllib.parse import urlsplit

import ijson
import numpy as np
import orjson

from driftbayes.bodies import redact_body
from driftbayes.events import (
    DEFAULT_PERSONA,
    BadRecord,
    BadRecordReport,
    EventBatch,
    handle_bad_records,
    reading,
    show_value,
)
from driftbayes.io.jsonl import check_input, iso_to_epoch, map_unique, open_input
from driftbayes.redact import current_policy, redact_headers, redact_query, redact_url
from driftbayes.templates import template_paths

try:
    import ijson
except ImportError:  # pragma: no cover - tests monkeypatch ijson = None for the fallback
    ijson = None

__all__ = ["read_har", "sniff_har"]

#: Largest decompressed HAR decoded in one piece when ijson is not installed.
ORJSON_MAX_BYTES = 256 << 20

_TIMINGS = ("blocked", "dns", "connect", "send", "wait", "receive")  # ssl is inside connect
_URL_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_NUMBER = (int, float)

# Fields in the order a bad entry reports them (the first failing one is named); 0 = fine.
_FIELDS = (
    "",
    "entries[]",
    "entries[].request",
    "entries[].startedDateTime",
    "entries[].request.url",
    "entries[].request.method",
    "entries[].response.status",
    "entries[].time",
)
_ENTRY, _REQUEST, _STARTED, _URL, _METHOD, _STATUS, _TIME = range(1, 8)

_LOG_RE = re.compile(rb'"log"\s*:\s*\{')
_GZIP_MAGIC = b"\x1f\x8b"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name


# --------------------------------------------------------------------------------------------
# content detection


def sniff_har(head: bytes) -> bool:
    """True when ``head`` (the first few KB of a file) looks like a HAR document.

    Parameters
    ----------
    head : bytes
        Leading bytes of the file, raw or gzip-compressed (a gzip head is decompressed as far
        as it goes).

    Returns
    -------
    bool
        Whether ``head`` has HAR's structure: a JSON object whose ``"log"`` member is an object
        with an ``"entries"`` key. When the head ends inside the ``log`` object before
        ``entries`` (a long ``pages`` list), its ``"version"`` or ``"creator"`` key suffices.
        One JSON Lines record carrying ``"log"`` and ``"version"`` keys is not HAR: its object
        ends without ``log.entries``.
    """
    if head[:2] == _GZIP_MAGIC:
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            return False
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head.startswith(b"{") or _LOG_RE.search(head) is None:
        return False
    in_log = False
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(head)):
            if prefix == "log" and event == "map_key":
                if value == "entries":
                    return True
                in_log = in_log or value in ("version", "creator")
            elif prefix == "" and event == "end_map":
                return False  # the first object ended without log.entries
    except ijson.JSONError:
        return in_log  # the head ends (or breaks) inside the log object
    return False


# --------------------------------------------------------------------------------------------
# per-entry extraction (streaming loop: keep only a small tuple per entry)


def _headers(raw: object) -> dict[str, str]:
    """HAR ``[{name, value}, ...]`` → ``{lower name: value}``; non-token names dropped."""
    out: dict[str, str] = {}
    if type(raw) is not list:
        return out
    for h in raw:
        if type(h) is not dict:
            continue
        name, value = h.get("name"), h.get("value")
        if type(name) is not str or value is None or not _TOKEN.fullmatch(name):
            continue  # also drops ":path" & co. and WebPageTest's "GET /x?y HTTP/1.1" lines
        name = name.lower()
        value = value if type(value) is str else str(value)
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _timings_total(timings: object) -> float:
    """Sum of the non-negative phase timings; NaN when none is recorded."""
    if type(timings) is not dict:
        return math.nan
    parts = [timings.get(k) for k in _TIMINGS]
    usable = [float(v) for v in parts if type(v) in _NUMBER and v >= 0 and math.isfinite(v)]
    return math.fsum(usable) if usable else math.nan


def _pull(entry: object, persona_field: str) -> tuple:
    """The fields of one entry that the reader keeps (``None`` for a non-object entry)."""
    if type(entry) is not dict:
        return (None,) * 10
    req = entry.get("request")
    if type(req) is dict:
        url, method, headers = req.get("url"), req.get("method"), _headers(req.get("headers"))
    else:
        url = method = None
        headers = {}
    resp = entry.get("response")
    status = resp.get("status") if type(resp) is dict else None
    content = resp.get("content") if type(resp) is dict else None
    if type(content) is not dict or type(content.get("text")) is not str or not content["text"]:
        content = None
    persona = entry.get(persona_field)
    if persona is None or persona == "":
        persona = entry.get("_" + persona_field)
    return (
        True,
        type(req) is dict,
        entry.get("startedDateTime"),
        url,
        method,
        status,
        entry.get("time"),
        _timings_total(entry.get("timings")),
        entry.get("pageref"),
        (persona, headers, content),
    )


# --------------------------------------------------------------------------------------------
# one batch of pulled entries → columns


def _split_url(url: str) -> tuple[str, str, str] | None:
    """``(host, path, raw query)`` of an HTTP(S)/WS(S) URL or an absolute path; else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme:
        if parts.scheme.lower() not in _URL_SCHEMES or not parts.netloc:
            return None
        host = parts.netloc.rpartition("@")[2].lower()
    elif url.startswith("/") and not url.startswith("//"):
        host = ""
    else:
        return None
    return host, parts.path or "/", parts.query


def _redact_header(name: str, value: str) -> str:
    """One request header value with secrets removed (secret name, or a URL's query/userinfo)."""
    value = redact_headers({name: value})[name]
    return redact_url(value) if ("?" in value or "@" in value) else value


def _number_column(values: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(float values, NaN where not a number; present mask = not None)."""
    present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    out = np.fromiter(
        (float(v) if type(v) in _NUMBER else math.nan for v in values),
        dtype=np.float64,
        count=len(values),
    )
    return out, present


def _text(value: object) -> str:
    """A string, a number as text, anything else (null, objects) as ``""``."""
    if type(value) is str:
        return value
    return str(value) if type(value) in _NUMBER else ""




def _bodies(contents: list, methods: np.ndarray, endpoints: np.ndarray, status: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Redacted response bodies, only for the last entry of each method × endpoint × status
    (the learner keeps only the latest one, so earlier ones are never redacted for nothing)."""
    policy = current_policy()
    body = np.full(len(contents), None, dtype=object)
    ctype = np.full(len(contents), None, dtype=object)
    seen: set = set()
    for i in range(len(contents) - 1, -1, -1):
        c, key = contents[i], (methods[i], endpoints[i], int(status[i]))
        if c is None or status[i] == 0 or key in seen:
            continue
        seen.add(key)
        data = c["text"].encode("utf-8", "surrogatepass")
        if c.get("encoding") == "base64":
            try:
                data = base64.b64decode(data, validate=False)
            except ValueError:
                continue
        mime = c.get("mimeType") if type(c.get("mimeType")) is str else ""
        text = redact_body(data, mime, policy=policy)
        if text is not None:
            body[i], ctype[i] = text, mime.split(";")[0].strip()
    return body, ctype


def _explain(code: int, row: tuple) -> str:
    _, _, started, url, method, status, time, _, _, _ = row
    if code == _ENTRY:
        return "expected an object"
    if code == _REQUEST:
        return "missing or not an object"
    if code == _STARTED:
        if started is None:
            return "missing"
        if type(started) is not str:
            return f"expected an ISO 8601 string, got {show_value(started)}"
        return f"not an ISO 8601 timestamp: {show_value(started)}"
    if code == _URL:
        if url is None or url == "":
            return "missing"
        if type(url) is not str:
            return f"expected a string, got {show_value(url)}"
        return f"not an http(s)/ws(s) URL or absolute path: {show_value(url)}"
    if code == _METHOD:
        return f"expected a string, got {show_value(method)}"
    if code == _STATUS:
        return f"expected 0 or an integer 100-599, got {show_value(status)}"
    return f"expected a number >= 0 (or usable timings), got {show_value(time)}"


def _columns(
    rows: list[tuple], first: int, source: str, file_session: str, persona_field: str
) -> tuple[EventBatch, list[BadRecord]]:
    """Validate and convert one batch of pulled entries; ``first`` is the first entry index."""
    n = len(rows)
    is_obj, has_req, started, url, method, status, time, fallback, pageref, rest = zip(
        *rows, strict=True
    )
    bad = np.zeros(n, dtype=np.int8)

    def flag(code: int, mask: np.ndarray) -> None:
        np.copyto(bad, np.int8(code), where=mask & (bad == 0))

    flag(_ENTRY, np.array([o is None for o in is_obj]))
    flag(_REQUEST, ~np.array([bool(r) for r in has_req]))

    # ts
    is_str = np.fromiter((type(s) is str for s in started), dtype=bool, count=n)
    ts = np.full(n, np.nan)
    if is_str.any():
        ts[is_str] = iso_to_epoch(np.asarray(started, dtype=object)[is_str])
    flag(_STARTED, ~np.isfinite(ts))

    # url → host, path, query (each distinct URL split once)
    urls = np.array([u if type(u) is str else "" for u in url], dtype=object)
    split = map_unique(urls, lambda u: _split_url(u) if u else None)
    flag(_URL, np.array([s is None for s in split]))

    # method
    wrong = np.array([m is not None and type(m) is not str for m in method])
    flag(_METHOD, wrong)
    methods = np.array([m if type(m) is str and m else "GET" for m in method], dtype=object)
    methods = map_unique(methods, str.upper)

    # status: 0 (no response) or 100-599; missing response/status → 0
    st, st_present = _number_column(status)
    with np.errstate(invalid="ignore"):
        st_ok = ((st == 0) | ((st >= 100) & (st <= 599))) & (st == np.floor(st))
    flag(_STATUS, st_present & ~st_ok)
    st = np.where(st_present & st_ok, st, 0).astype(np.int32)

    # latency: time, else the timings sum; NaN for status 0
    t, t_present = _number_column(time)
    fb = np.asarray(fallback, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        t_ok = np.isfinite(t) & (t >= 0)
    latency = np.where(t_ok, t, fb)
    flag(_TIME, t_present & ~t_ok & np.isnan(fb) & (st != 0))
    latency[st == 0] = np.nan

    fine = np.flatnonzero(bad == 0)
    bad_idx = np.flatnonzero(bad)
    bads = [
        BadRecord(source, first + int(i), _FIELDS[bad[i]], _explain(int(bad[i]), rows[i]))
        for i in bad_idx
    ]
    if fine.size == 0:
        return EventBatch.empty(source), bads

    # keep the good rows only from here on
    host = np.array([split[i][0] for i in fine], dtype=object)
    path = np.array([split[i][1] for i in fine], dtype=object)
    query = map_unique(np.array([split[i][2] for i in fine], dtype=object), redact_query)
    personas = [rest[i][0] for i in fine]  # entry field, not a header: no redaction applies
    headers = [rest[i][1] for i in fine]
    pages = np.array([_text(pageref[i]) for i in fine], dtype=object)
    sessions = map_unique(pages, lambda p: f"{file_session}#{p}" if p else file_session)
    extra = {"client": sessions, "host": host, "query": query}
    for name in sorted(set().union(*headers)):
        col = np.array([h.get(name) for h in headers], dtype=object)
        present = col != None  # noqa: E711 - elementwise
        col[present] = map_unique(col[present], lambda v, k=name: _redact_header(k, v))
        extra[f"header:{name}"] = col
    if "header:user-agent" in extra:
        extra["user_agent"] = extra["header:user-agent"]
    endpoints = template_paths(path)
    contents = [rest[i][2] for i in fine]
    if any(c is not None for c in contents):
        extra["response_body"], extra["response_content_type"] = _bodies(
            contents, methods[fine], endpoints, st[fine])
    # persona: the entry's own field, else the (redacted) persona headers, first listed wins
    persona = np.full(fine.size, DEFAULT_PERSONA, dtype=object)
    for k in ("x-mockforge-persona", "x-" + persona_field.lower()):
        col = extra.get(f"header:{k}")
        if col is not None:
            persona = np.where([bool(v) for v in col], col, persona)
    own = [p if type(p) is str and p else None for p in personas]
    persona = np.where([p is not None for p in own], np.array(own, dtype=object), persona)
    batch = EventBatch(
        ts=ts[fine],
        method=methods[fine],
        endpoint=endpoints,
        status=st[fine],
        latency_ms=latency[fine],
        persona=persona,
        session=sessions,
        line=fine + first,
        source=source,
        extra=extra,
    )
    return batch, bads


# --------------------------------------------------------------------------------------------
# streaming


class _Broken(str):
    """Last item of :func:`_entries` when the JSON document breaks off; the text says why."""


def _entries(f, source: str) -> Iterator[object]:
    """Items of ``log.entries`` in order, then a :class:`_Broken` if the JSON is broken."""
    if ijson is not None:
        done = 0
        try:
            for item in ijson.items(f, "log.entries.item", use_float=True):
                done += 1
                yield item
        except ijson.JSONError as exc:
            if "integer overflow" not in str(exc) or not f.seekable():
                yield _Broken(str(exc) or type(exc).__name__)
                return
        else:
            return
        # yajl's C parser stops at an integer beyond 64 bits, which is valid JSON: read the
        # document again with ijson's pure-Python parser, from the entry after the last one read
        f.seek(0)
        try:
            for i, item in enumerate(ijson.get_backend("python").items(
                    f, "log.entries.item", use_float=True)):
                if i >= done:
                    yield item
        except ijson.JSONError as exc:
            yield _Broken(str(exc) or type(exc).__name__)
        return
    data = f.read(ORJSON_MAX_BYTES + 1)
    if len(data) > ORJSON_MAX_BYTES:
        raise ImportError(
            f"{source}: HAR files over {ORJSON_MAX_BYTES >> 20} MiB need ijson to stream "
            "(pip install ijson)"
        )
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield _Broken(str(exc))
        return
    log = doc.get("log") if type(doc) is dict else None
    entries = log.get("entries") if type(log) is dict else None
    if type(entries) is list:
        yield from entries


def _has_entries(path: str | PathLike[str]) -> bool:
    """Whether the document has a ``log.entries`` array; broken JSON counts as yes (it is
    reported as broken already). Only asked when no entry was read."""
    with open_input(path) as f:
        if ijson is None:
            try:
                doc = orjson.loads(f.read(ORJSON_MAX_BYTES + 1))
            except orjson.JSONDecodeError:
                return True
            log = doc.get("log") if type(doc) is dict else None
            return type(log) is dict and type(log.get("entries")) is list
        try:
            for prefix, event, _ in ijson.parse(f):
                if prefix == "log.entries" and event == "start_array":
                    return True
        except ijson.JSONError:
            return True
    return False


def read_har(
    path: str | PathLike[str],
    *,
    batch_size: int = 65536,
    strict: bool = False,
    report: BadRecordReport | None = None,
    persona_field: str = "persona",
) -> Iterator[EventBatch]:
    """Stream the entries of a HAR 1.2 file as :class:`~driftbayes.events.EventBatch` es.

    Parameters
    ----------
    path : str or path-like
        HAR file; gzip is detected and decompressed; ``-`` reads stdin.
    batch_size : int
        Entries per batch (a batch holds at most this many events).
    strict : bool
        Raise :class:`~driftbayes.events.BadRecordError` at the first bad entry (its batch is
        not yielded) or at a truncation, instead of skipping/reporting it.
    report : BadRecordReport, optional
        Collects skipped entries. Without one, a warning summarises them at the end.
    persona_field : str
        Entry field (also tried as the custom field ``_<persona_field>``) and request header
        (``x-<persona_field>``) holding the persona.

    Yields
    ------
    EventBatch
        Good entries in file order; ``line`` is the 1-based entry index, ``source`` the path as
        given. The mapping, the status-0 rule and the redaction are described in the module
        docstring. Empty batches are not yielded.
    """
    check_input(path, batch_size)
    return _iter_har(path, batch_size, strict, report, persona_field)


def _iter_har(
    path: str | PathLike[str],
    batch_size: int,
    strict: bool,
    report: BadRecordReport | None,
    persona_field: str,
) -> Iterator[EventBatch]:
    with reading(path, report) as scope:
        source, report = scope
        file_session = "har:" + ("<stdin>" if source == "<stdin>" else os.path.basename(source))

        def flush(rows: list[tuple], first: int, broken: list[BadRecord]) -> Iterator[EventBatch]:
            batch, bad = (
                _columns(rows, first, source, file_session, persona_field)
                if rows else (EventBatch.empty(source), [])
            )
            batch = scope.accept(batch, sorted(bad + broken, key=lambda b: b.line),
                                 strict=strict)
            if len(batch):
                yield batch

        rows: list[tuple] = []
        first = count = 0
        with open_input(path) as f:
            for entry in _entries(f, source):
                if type(entry) is _Broken:
                    broken = BadRecord(
                        source, count + 1, "json",
                        f"JSON breaks off after {count} entries (truncated or invalid): {entry}",
                    )
                    yield from flush(rows, first + 1, [broken])
                    rows = []
                    break
                rows.append(_pull(entry, persona_field))
                count += 1
                if len(rows) == batch_size:
                    yield from flush(rows, first + 1, [])
                    rows, first = [], count
            if rows:
                yield from flush(rows, first + 1, [])
        if count == 0 and str(path) != "-" and not _has_entries(path):
            bad = BadRecord(source, 0, "log.entries", "not a HAR file: no log.entries array")
            handle_bad_records([bad], strict=strict, report=report)

