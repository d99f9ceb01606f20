"""MockForge recorder database reader (``mockforge-recordings.db``, SQLite).

The recorder (``crates/mockforge-recorder``) writes one ``requests`` row per exchange and, once
answered, one ``responses`` row with the same id::

    requests(id, protocol, timestamp, method, path, query_params, headers, body, body_encoding,
             client_ip, trace_id, span_id, duration_ms, status_code, tags)
    responses(request_id, status_code, headers, body, body_encoding, size_bytes, timestamp)

The database is opened read-only and streamed with ``fetchmany``; SQLite sorts the join by
timestamp (numbers and numeric text as epoch seconds/ms/µs/ns by magnitude, other text through
``julianday``; ties and unparseable timestamps by rowid, the latter first).

One event per ``requests`` row:

- ``ts``: ``timestamp``, RFC 3339 text (what the recorder writes; naive = UTC, ``Z`` and any
  offset ok) or epoch number (unit by magnitude, as for JSONL, also when stored as text).
- ``method``: upper-cased; NULL or ``""`` → ``GET``.
- ``endpoint``: template of ``path`` (a query string inside ``path`` is split off).
- ``status``: ``requests.status_code``, else ``responses.status_code``, else 0 (no response
  recorded: the status model is untouched); 0 or 100–599.
- ``latency_ms``: ``duration_ms`` (the recorder's own handling time, so it is kept even when
  the status is 0); NULL → NaN.
- ``persona``: request header ``x-mockforge-persona`` or ``x-persona``, else the same response
  headers (MockForge reports the active persona there), else ``"default"``.
- ``session``: ``trace_id`` (one W3C trace = one session), else ``""``.
- ``line``: the ``requests`` rowid (``SELECT * FROM requests WHERE rowid = <line>``).
- ``extra["client"]``: ``client_ip``, plus ``" "`` and the ``user-agent`` header when present.
- ``extra["query"]``: ``query_params`` (a JSON object, as the recorder writes, or a raw query
  string) and any query in ``path``, as one query string redacted by
  :func:`~driftbayes.redact.redact_query`.
- ``extra["header:<name>"]``: request headers (a JSON object; list values joined with
  ``", "``), names lower-cased, values through :func:`~driftbayes.redact.redact_headers` and,
  when URL-like (``?`` or ``@``), :func:`~driftbayes.redact.redact_url`; ``None`` where a row
  lacks the header.
- ``extra["user_agent"]``, ``extra["protocol"]`` (``http``, ``grpc``, ``websocket``,
  ``graphql``, …): as recorded. Rows of every protocol are read; filter on ``protocol`` if
  only HTTP is wanted.

Bodies, tags and span ids are not read. A bad row (unparseable or NULL ``timestamp``, NULL or
empty ``path``, negative or non-numeric ``duration_ms``, a status outside 0 and 100–599, a
``headers`` or ``query_params`` value that is not valid JSON of the right shape) is rejected
whole and reported with its rowid and column name.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import orjson
import pandas as pd

from driftbayes.events import (
    DEFAULT_PERSONA,
    BadRecord,
    BadRecordReport,
    EventBatch,
    reading,
    show_value,
)
from driftbayes.io.jsonl import check_input, epoch_seconds, iso_to_epoch, map_unique
from driftbayes.redact import redact_headers, redact_query, redact_url
from driftbayes.templates import template_paths

__all__ = ["read_mockforge_sqlite", "sniff_sqlite"]

SQLITE_MAGIC = b"SQLite format 3\x00"

#: Request (then response) headers that name the persona, in order of preference.
PERSONA_HEADERS = ("x-mockforge-persona", "x-persona")

_REQUEST_COLUMNS = (
    "timestamp", "method", "path", "query_params", "headers", "client_ip", "trace_id",
    "duration_ms", "status_code", "protocol",
)
_NUMBER = (int, float)

# Columns in the order a bad row reports them (the first failing one is named); 0 = fine.
_FIELDS = ("", "timestamp", "method", "path", "query_params", "headers", "status_code",
           "duration_ms")
_TS, _METHOD, _PATH, _QUERY, _HEADERS, _STATUS, _DURATION = range(1, 8)


def sniff_sqlite(head: bytes) -> bool:
    """True when ``head`` starts with the SQLite 3 file magic ``SQLite format 3\\0``."""
    return head[: len(SQLITE_MAGIC)] == SQLITE_MAGIC


# --------------------------------------------------------------------------------------------
# query


def _epoch_sql(x: str) -> str:
    """SQL for a numeric epoch ``x`` in seconds, unit detected by magnitude like JSONL."""
    return (
        f"(CASE WHEN abs({x}) >= 1e17 THEN {x} / 1e9 WHEN abs({x}) >= 1e14 THEN {x} / 1e6 "
        f"WHEN abs({x}) >= 1e11 THEN {x} / 1e3 ELSE {x} END)"
    )


def _query(con: sqlite3.Connection, source: str) -> str:
    """The SELECT over the tables and columns this database has (recorder schemas vary)."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "requests" not in tables:
        raise ValueError(f"{source}: not a MockForge recorder database (no 'requests' table)")
    have = {r[1] for r in con.execute("PRAGMA table_info(requests)")}
    missing = {"timestamp", "path"} - have
    if missing:
        raise ValueError(f"{source}: 'requests' table lacks {', '.join(sorted(missing))}")
    cols = [f"q.{c}" if c in have else f"NULL AS {c}" for c in _REQUEST_COLUMNS]
    join = ""
    resp = {r[1] for r in con.execute("PRAGMA table_info(responses)")}
    if "request_id" in resp and "id" in have:
        cols += [
            "s.status_code" if "status_code" in resp else "NULL",
            "s.headers" if "headers" in resp else "NULL",
        ]
        join = "LEFT JOIN responses AS s ON s.request_id = q.id"
    else:
        cols += ["NULL", "NULL"]
    ts = "q.timestamp"
    numeric = f"CAST({ts} AS REAL)"
    key = (
        f"CASE WHEN typeof({ts}) IN ('integer', 'real') THEN {_epoch_sql(ts)} "
        f"WHEN {ts} GLOB '[0-9]*' AND {ts} NOT GLOB '*[^0-9.]*' THEN {_epoch_sql(numeric)} "
        f"ELSE (julianday({ts}) - 2440587.5) * 86400.0 END"
    )
    return (
        f"SELECT q.rowid, {', '.join(cols)} FROM requests AS q {join} "
        f"ORDER BY {key}, q.rowid"
    )


# --------------------------------------------------------------------------------------------
# one chunk of rows → columns


def _timestamps(values: tuple) -> np.ndarray:
    """Epoch seconds of numbers, numeric text (unit by magnitude) and ISO 8601 text; NaN else."""
    n = len(values)
    num = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    ts = epoch_seconds(num.to_numpy(dtype=np.float64, na_value=np.nan))
    text = np.flatnonzero(np.isnan(ts) & np.fromiter(
        (type(v) is str for v in values), dtype=bool, count=n
    ))
    if text.size:
        ts[text] = iso_to_epoch(np.asarray(values, dtype=object)[text])
    return ts


def _json_object(text: object) -> dict | None:
    """A JSON object from a TEXT cell; ``{}`` for NULL/empty; None when not an object."""
    if text is None or text == "":
        return {}
    if type(text) is not str and type(text) is not bytes:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is dict else None


def _header_map(text: object) -> dict[str, str] | None:
    """Recorder ``headers`` JSON → ``{lower name: value}``; None when not a JSON object."""
    obj = _json_object(text)
    if obj is None:
        return None
    out: dict[str, str] = {}
    for k, v in obj.items():
        if v is None:
            continue
        if type(v) is list:
            v = ", ".join(str(x) for x in v)
        out[str(k).lower()] = v if type(v) is str else str(v)
    return out


def _query_string(params: object, path_query: str) -> str | None:
    """``query_params`` (JSON object or raw string) + the path's query → one raw query string."""
    if params is None or params == "":
        parts = []
    elif type(params) is str and params.lstrip().startswith("{"):
        obj = _json_object(params)
        if obj is None:
            return None
        pairs = [
            (str(k), x if type(x) is str else orjson.dumps(x).decode())
            for k, v in obj.items()
            for x in (v if type(v) is list else [v])
        ]
        parts = [urlencode(pairs)]
    elif type(params) is str:
        parts = [params.lstrip("?")]
    else:
        return None
    if path_query:
        parts.insert(0, path_query)
    return "&".join(p for p in parts if p)


def _redact_header(name: str, value: str) -> str:
    """One request header value with secrets removed (secret name, or a URL's query/userinfo)."""
    value = redact_headers({name: value})[name]
    return redact_url(value) if ("?" in value or "@" in value) else value


def _explain(code: int, value: object) -> str:
    shown = show_value(value)
    if value is None or (code == _PATH and value == ""):
        return "missing"
    if code == _TS:
        return f"not an RFC 3339 timestamp or epoch number: {shown}"
    if code == _METHOD:
        return f"expected text, got {shown}"
    if code == _PATH:
        return f"expected text, got {shown}"
    if code in (_QUERY, _HEADERS):
        return f"expected a JSON object, got {shown}"
    if code == _STATUS:
        return f"expected 0 or an integer 100-599, got {shown}"
    return f"expected a number >= 0, got {shown}"


def _columns(rows: list[tuple], source: str) -> tuple[EventBatch, list[BadRecord]]:
    """Validate and convert one chunk of query rows (in query order)."""
    n = len(rows)
    (rowid, ts_raw, method, path, params, headers, client_ip, trace_id, duration, status,
     protocol, resp_status, resp_headers) = zip(*rows, strict=True)
    bad = np.zeros(n, dtype=np.int8)
    offending: dict[int, object] = {}

    def flag(code: int, mask: np.ndarray, values: tuple) -> None:
        new = np.flatnonzero(mask & (bad == 0))
        bad[new] = code
        offending.update((int(i), values[i]) for i in new)

    ts = _timestamps(ts_raw)
    flag(_TS, ~np.isfinite(ts), ts_raw)

    flag(_METHOD, np.array([m is not None and type(m) is not str for m in method]), method)
    methods = map_unique(
        np.array([m if type(m) is str and m else "GET" for m in method], dtype=object), str.upper
    )

    flag(_PATH, np.array([type(p) is not str or not p for p in path]), path)
    split = [p.partition("?") if type(p) is str else ("", "", "") for p in path]

    memo: dict[tuple, str | None] = {}  # query_params repeat: build each pair once
    queries = [
        memo[key] if key in memo else memo.setdefault(key, _query_string(*key))
        for key in zip(params, (s[2] for s in split))
    ]
    flag(_QUERY, np.array([q is None for q in queries]), params)

    header_maps = [_header_map(h) for h in headers]
    flag(_HEADERS, np.array([h is None for h in header_maps]), headers)

    req_st = np.array([float(s) if type(s) in _NUMBER else math.nan for s in status])
    res_st = np.array([float(s) if type(s) in _NUMBER else math.nan for s in resp_status])
    wrong_type = np.array([s is not None and type(s) not in _NUMBER for s in status])
    st = np.where(np.isnan(req_st), res_st, req_st)
    with np.errstate(invalid="ignore"):
        st_ok = ((st == 0) | ((st >= 100) & (st <= 599))) & (st == np.floor(st))
    flag(_STATUS, wrong_type | (~np.isnan(st) & ~st_ok),
         tuple(s if s is not None else r for s, r in zip(status, resp_status, strict=True)))
    st = np.where(st_ok, st, 0).astype(np.int32)

    lat = np.array([float(d) if type(d) in _NUMBER else math.nan for d in duration])
    with np.errstate(invalid="ignore"):
        lat_bad = (lat < 0) | np.isinf(lat)
    lat_bad |= np.array([d is not None and type(d) not in _NUMBER for d in duration])
    flag(_DURATION, lat_bad, duration)

    fine = np.flatnonzero(bad == 0)
    bads = [
        BadRecord(source, int(rowid[i]), _FIELDS[bad[i]], _explain(int(bad[i]), offending[i]))
        for i in np.flatnonzero(bad)
    ]
    if fine.size == 0:
        return EventBatch.empty(source), bads

    hdrs = [header_maps[i] for i in fine]
    extra: dict[str, np.ndarray] = {}
    for name in sorted(set().union(*hdrs)):
        col = np.array([h.get(name) for h in hdrs], dtype=object)
        present = col != None  # noqa: E711 - elementwise
        col[present] = map_unique(col[present], lambda v, k=name: _redact_header(k, v))
        extra[f"header:{name}"] = col
    ua = extra.get("header:user-agent")
    ip = [client_ip[i] if client_ip[i] is not None else "" for i in fine]
    if ua is not None:
        extra["user_agent"] = ua
        client = [f"{a} {u}".strip() if u else str(a) for a, u in zip(ip, ua, strict=True)]
    else:
        client = [str(a) for a in ip]
    extra["client"] = np.array(client, dtype=object)
    extra["query"] = map_unique(np.array([queries[i] for i in fine], dtype=object), redact_query)
    extra["protocol"] = np.array(
        [protocol[i] if protocol[i] is not None else "" for i in fine], dtype=object
    )

    # persona from the (redacted) request headers, else from the response headers
    persona = np.full(fine.size, None, dtype=object)
    for k in reversed(PERSONA_HEADERS):  # the first header listed wins
        col = extra.get(f"header:{k}")
        if col is not None:
            persona = np.where([bool(v) for v in col], col, persona)
    from_response: dict[object, str] = {}
    for j in np.flatnonzero([v is None for v in persona]):
        text = resp_headers[fine[j]]
        if text not in from_response:
            r = redact_headers(_header_map(text) or {})
            from_response[text] = next((r[k] for k in PERSONA_HEADERS if r.get(k)),
                                       DEFAULT_PERSONA)
        persona[j] = from_response[text]

    batch = EventBatch(
        ts=ts[fine],
        method=methods[fine],
        endpoint=template_paths(np.array([split[i][0] for i in fine], dtype=object)),
        status=st[fine],
        latency_ms=lat[fine],
        persona=persona,
        session=np.array([str(trace_id[i]) if trace_id[i] else "" for i in fine], dtype=object),
        line=np.array([rowid[i] for i in fine], dtype=np.int64),
        source=source,
        extra=extra,
    )
    return batch, bads


# --------------------------------------------------------------------------------------------
# streaming


def read_mockforge_sqlite(
    path: str | PathLike[str],
    *,
    batch_size: int = 65536,
    strict: bool = False,
    report: BadRecordReport | None = None,
) -> Iterator[EventBatch]:
    """Stream a MockForge recorder database as :class:`~driftbayes.events.EventBatch` es.

    Parameters
    ----------
    path : str or path-like
        The recorder's SQLite file (opened read-only; a live recorder may keep writing).
    batch_size : int
        Rows fetched per batch (a batch holds at most this many events).
    strict : bool
        Raise :class:`~driftbayes.events.BadRecordError` at the first bad row (its batch is not
        yielded) instead of skipping it.
    report : BadRecordReport, optional
        Collects skipped rows (``line`` = rowid). Without one, a warning summarises them at the
        end.

    Yields
    ------
    EventBatch
        Good rows in timestamp order; columns and extras as in the module docstring. Empty
        batches are not yielded.

    Raises
    ------
    ValueError
        (At the first ``next``.) The file is not an SQLite database or has no ``requests`` table
        with ``timestamp`` and ``path`` columns.
    """
    check_input(path, batch_size)
    if str(path) == "-":
        raise ValueError("the MockForge SQLite reader needs a file, not stdin")
    return _iter_sqlite(path, batch_size, strict, report)


def _iter_sqlite(
    path: str | PathLike[str],
    batch_size: int,
    strict: bool,
    report: BadRecordReport | None,
) -> Iterator[EventBatch]:
    with reading(path, report) as scope:
        source = scope.source
        uri = Path(os.fspath(path)).resolve().as_uri() + "?mode=ro"
        con = sqlite3.connect(uri, uri=True)
        try:
            try:
                cur = con.execute(_query(con, source))
            except sqlite3.DatabaseError as exc:
                raise ValueError(f"{source}: cannot read as an SQLite database: {exc}") from exc
            while rows := cur.fetchmany(batch_size):
                batch, bad = _columns(rows, source)
                batch = scope.accept(batch, bad, strict=strict)
                if len(batch):
                    yield batch
        finally:
            con.close()
