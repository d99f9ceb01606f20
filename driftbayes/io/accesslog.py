"""Web server access logs (Common / Combined Log Format, nginx and Apache formats, NASA TSV).

Each line is matched by one compiled regex with canonical named groups; the captured columns are
converted vectorised (numpy / pandas). The line formats:

=============== ===========================================================================
``log_format``  meaning
=============== ===========================================================================
``"auto"``      (default) sniff the head of the file: NASA TSV when it looks like one, otherwise
                Common or Combined Log Format with an optional response time as last field
                (see below) and any extra fields between the user agent and that last field.
``"common"``    ``%h %l %u %t "%r" %>s %b`` exactly.
``"combined"``  ``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"`` exactly.
``"combined_rt"`` combined plus a response time as the last field (unit rule below).
``"nasa-tsv"``  tab-separated ``host logname time method url response bytes referer useragent``
                with ``time`` in epoch seconds; a header line 1 is skipped.
nginx string    an nginx ``log_format`` such as ``$remote_addr - $remote_user [$time_local]
                "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
                $request_time`` (recognised by its ``$variables``).
Apache string   an Apache ``LogFormat`` such as ``%h %l %u %t \\"%r\\" %>s %b %D`` (recognised by
                its ``%`` directives; ``\\"`` is read as ``"``).
=============== ===========================================================================

**Response time without flags.** In ``"auto"`` mode a bare number that is the *last* field of a
Common or Combined line is the response time: with a decimal point it is nginx ``$request_time``
in **seconds** (``0.123`` → 123 ms); an integer is Apache ``%D`` in **microseconds** (``123456`` →
123.456 ms); ``-`` means not recorded. The rule is decided per line. Apache ``%T`` (integer
seconds) would be misread as microseconds, so such logs need an explicit format string.

Understood nginx variables: ``$remote_addr`` (client), ``$remote_user``, ``$time_local``,
``$time_iso8601``, ``$msec``, ``$request``, ``$request_method``, ``$request_uri``, ``$uri``,
``$args`` / ``$query_string``, ``$status``, ``$http_referer``, ``$http_user_agent``,
``$request_time`` (seconds). Apache directives: ``%h`` / ``%a`` (client), ``%u``, ``%t``,
``%{sec|msec|usec}t``, ``%r``, ``%m``, ``%U``, ``%q``, ``%s`` / ``%>s``, ``%{Referer}i``,
``%{User-Agent}i``, ``%D`` (µs), ``%T`` / ``%{s|ms|us}T``. Any other variable or directive is
matched (a non-space token, or up to the closing quote inside quotes) and ignored.

Output: ``endpoint`` is the templated path (the query string is dropped); ``status`` the response
status (``-`` → 0, not recorded); ``latency_ms`` NaN when the format has no response time (the
latency models stay untouched; status, sequence and frequency still learn); ``persona`` is
``"default"`` and ``session`` ``""`` (sessions are cut later from ``extra["client"]``). ``extra``
holds ``client`` (IP + ``" "`` + user agent when there is a user agent, else the IP / host),
``user`` (remote user, ``-`` → None), ``user_agent``, ``referer`` (redacted) and ``query``
(redacted, without ``?``); ``None`` where absent.

Bad lines: a line that does not match the format is bad with field ``"line"``; a request line
such as ``"-"`` or ``"GET"`` (no target) has field ``"request"``; an unparseable time ``"ts"``; a
status outside 100–599 ``"status"``. Lenient mode counts them, strict mode raises at the first one
with ``file:line``. Blank lines are skipped silently; line numbers are 1-based physical lines.
Bytes that are not UTF-8 are replaced (U+FFFD), they do not reject the line.
"""

from __future__ import annotations

import gc
import io
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from driftbayes.events import (
    DEFAULT_PERSONA,
    BadRecord,
    BadRecordReport,
    EventBatch,
    reading,
    show_value,
)
from driftbayes.io.jsonl import check_input, iso_to_epoch, open_input
from driftbayes.redact import redact_url
from driftbayes.templates import template_paths

__all__ = [
    "LOG_FORMATS",
    "clf_to_epoch",
    "compile_log_format",
    "read_access_log",
    "sniff_access_log",
    "split_targets",
    "text_batches",
]

# --------------------------------------------------------------------------------------------
# regex building blocks and presets

_Q = r'[^"\\]*(?:\\.[^"\\]*)*'  # inside double quotes, backslash escapes allowed
_RT = r"\d+(?:\.\d+)?|-"
_END = r"[ \t\r]*$"
_CLF_HEAD = (
    rf'(?P<ip>\S+) \S+ (?P<user>\S+) \[(?P<ts_clf>[^\]]*)\] "(?P<request>{_Q})" '
    r"(?P<status>\S+) \S+"
)
_REF_UA = rf' "(?P<referer>{_Q})" "(?P<user_agent>{_Q})"'

#: Named presets → regex with canonical named groups.
LOG_FORMATS: dict[str, str] = {
    "common": f"^{_CLF_HEAD}{_END}",
    "combined": f"^{_CLF_HEAD}{_REF_UA}{_END}",
    "combined_rt": f"^{_CLF_HEAD}{_REF_UA} (?P<rt_auto>{_RT}){_END}",
    "nasa-tsv": (
        r"^(?P<ip>[^\t]*)\t[^\t]*\t(?P<ts_s>[^\t]*)\t(?P<method>[^\t]*)\t(?P<url>[^\t]*)\t"
        r"(?P<status>[^\t]*)\t[^\t]*\t(?P<referer>[^\t]*)\t(?P<user_agent>[^\t\r]*)\r?$"
    ),
}
_AUTO = f"^{_CLF_HEAD}(?:{_REF_UA}(?: .*?)??)?(?: (?P<rt_auto>{_RT}))?{_END}"
_NASA_HEADER = re.compile(r"host\tlogname\ttime\tmethod\turl\tresponse\tbytes\treferer\tuseragent")

# request line: method, target, optional protocol (RE2 syntax: read in Arrow)
_REQUEST_LINE = (r"^(?P<method>[A-Za-z][A-Za-z0-9_.-]*) +(?P<target>\S.*?)"
                 r"(?: +[A-Za-z]+/[0-9]+(?:\.[0-9]+)?)? *$")
_TARGET_START = r"^(?:/|\*$|[A-Za-z][A-Za-z0-9+.\-]*://)"
_TARGET = re.compile(_TARGET_START)
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")

_SNIFF_LINES = 20
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class _Format:
    name: str
    regex: re.Pattern[str]
    header: re.Pattern[str] | None = None  # a first line matching it is skipped


# --------------------------------------------------------------------------------------------
# nginx / Apache format strings → regex


def _group(name: str | None, pattern: str, used: set[str]) -> str:
    if name is None or name in used:
        return f"(?:{pattern})"
    used.add(name)
    return f"(?P<{name}>{pattern})"


def _nginx_piece(var: str, before: str, used: set[str]) -> str:
    quoted = before.endswith('"')
    text = _Q if quoted else r"\S*"
    if var == "time_local":
        pat = r"[^\]]+" if before.endswith("[") else r"\d+/\w+/\d+:\d+:\d+:\d+ [+-]\d{4}"
        return _group("ts_clf", pat, used)
    table: dict[str, tuple[str, str]] = {
        "remote_addr": ("ip", r"\S+"),
        "remote_user": ("user", text),
        "time_iso8601": ("ts_iso", r"\S+"),
        "msec": ("ts_s", r"\d+(?:\.\d+)?"),
        "request": ("request", _Q if quoted else r".+?"),
        "request_method": ("method", r"\S+"),
        "request_uri": ("url", text),
        "uri": ("path", text),
        "document_uri": ("path", text),
        "args": ("query", text),
        "query_string": ("query", text),
        "status": ("status", r"\S+"),
        "http_referer": ("referer", text),
        "http_user_agent": ("user_agent", text),
        "request_time": ("rt_s", _RT),
    }
    name, pat = table.get(var, (None, text))
    return _group(name, pat, used)


def _apache_piece(param: str | None, letter: str, before: str, used: set[str]) -> str:
    quoted = before.endswith('"')
    text = _Q if quoted else r"\S*"
    if letter == "%":
        return "%"
    if letter == "t":
        if param is None:
            return r"\[" + _group("ts_clf", r"[^\]]+", used) + r"\]"
        units = {"sec": "ts_s", "msec": "ts_ms", "usec": "ts_us"}
        if param not in units:
            raise ValueError(
                f"unsupported Apache time directive %{{{param}}}t; use %t, %{{sec}}t, "
                "%{msec}t or %{usec}t, or read the file with read_regex_mapped"
            )
        return _group(units[param], r"\d+", used)
    if letter == "T":
        units = {None: "rt_s", "s": "rt_s", "ms": "rt_ms", "us": "rt_us"}
        return _group(units.get(param), _RT, used)
    if letter == "i" and param is not None:
        header = param.lower()
        name = {"referer": "referer", "user-agent": "user_agent"}.get(header)
        return _group(name, text, used)
    table: dict[str, tuple[str, str]] = {
        "h": ("ip", r"\S+"),
        "a": ("ip", r"\S+"),
        "u": ("user", text),
        "r": ("request", _Q if quoted else r".+?"),
        "m": ("method", r"\S+"),
        "U": ("path", text),
        "q": ("query", text),
        "s": ("status", r"\S+"),
        "D": ("rt_us", _RT),
    }
    name, pat = table.get(letter, (None, text))
    return _group(name, pat, used)


_NGINX_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_APACHE_DIRECTIVE = re.compile(r"%[<>]?(?:!?\d+(?:,\d+)*)?(?:\{([^}]*)\})?[<>]?([A-Za-z%])")


def _compile_string(spec: str, token: re.Pattern[str], piece: Callable) -> str:
    parts: list[str] = []
    used: set[str] = set()
    pos = 0
    for m in token.finditer(spec):
        literal = spec[pos : m.start()]
        parts.append(re.escape(literal))
        before = spec[: m.start()]
        parts.append(piece(m, before, used))
        pos = m.end()
    parts.append(re.escape(spec[pos:]))
    if "request" not in used and not used & {"url", "path"}:
        raise ValueError(
            f"log format {spec!r} has no request line or path "
            "($request / $request_uri / $uri, %r / %U)"
        )
    return "^" + "".join(parts) + _END


def compile_log_format(log_format: str) -> re.Pattern[str]:
    """Regex of a preset name, an nginx ``log_format`` or an Apache ``LogFormat`` string.

    Parameters
    ----------
    log_format : str
        ``"auto"`` (Common/Combined with optional trailing fields and response time),
        a key of :data:`LOG_FORMATS`, a string with nginx ``$variables`` or a string with
        Apache ``%`` directives.

    Returns
    -------
    re.Pattern
        Anchored regex whose named groups are the canonical ones the reader converts
        (``ip``, ``user``, ``ts_clf``/``ts_iso``/``ts_s``/``ts_ms``/``ts_us``, ``request`` or
        ``method``/``url``/``path``/``query``, ``status``, ``referer``, ``user_agent``,
        ``rt_s``/``rt_ms``/``rt_us``/``rt_auto``).

    Raises
    ------
    ValueError
        For an unknown preset, a string that is neither format, or a format without a request.
    """
    return _format(log_format).regex


def _format(log_format: str) -> _Format:
    if log_format == "auto":
        return _Format("auto", re.compile(_AUTO))
    if log_format in LOG_FORMATS:
        header = _NASA_HEADER if log_format == "nasa-tsv" else None
        return _Format(log_format, re.compile(LOG_FORMATS[log_format]), header)
    if _NGINX_VAR.search(log_format):
        regex = _compile_string(
            log_format, _NGINX_VAR, lambda m, before, used: _nginx_piece(
                m.group(1) or m.group(2), before, used)
        )
        return _Format("nginx log_format", re.compile(regex))
    if _APACHE_DIRECTIVE.search(log_format):
        spec = log_format.replace('\\"', '"')
        regex = _compile_string(
            spec, _APACHE_DIRECTIVE, lambda m, before, used: _apache_piece(
                m.group(1), m.group(2), before, used)
        )
        return _Format("Apache LogFormat", re.compile(regex))
    raise ValueError(
        f"unknown log_format {log_format!r}: use 'auto', one of {', '.join(LOG_FORMATS)}, an "
        "nginx log_format string ($remote_addr ...) or an Apache LogFormat string (%h ...)"
    )


# --------------------------------------------------------------------------------------------
# vectorised conversions, shared with the regex-mapped reader

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_KEYS = np.array([(ord(a) << 16) | (ord(b) << 8) | ord(c) for a, b, c in _MONTHS])
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_CLF_SLOW = re.compile(
    r"\s*(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)"
    r"(?:\s*([+-])(\d{2}):?(\d{2}))?\s*"
)
_DIGITS = [0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19, 22, 23, 24, 25]


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _clf_slow(text: str | None) -> float:
    m = _CLF_SLOW.fullmatch(text) if isinstance(text, str) else None
    if m is None or m.group(2).lower() not in _MONTHS:
        return np.nan
    day, mon, year, hour, minute, sec, sign, oh, om = m.groups()
    try:
        base = datetime(int(year), _MONTHS.index(mon.lower()) + 1, int(day), int(hour),
                        int(minute), tzinfo=UTC).timestamp()
    except ValueError:
        return np.nan
    if float(sec) >= 61:
        return np.nan
    offset = 0 if sign is None else (1 if sign == "+" else -1) * (int(oh) * 3600 + int(om) * 60)
    return base + float(sec) - offset


def clf_to_epoch(values: np.ndarray | list) -> np.ndarray:
    """Common Log Format times (``17/May/2015:10:05:03 +0000``) → epoch seconds, UTC.

    The usual 26-character form is parsed fully vectorised from the characters' code points;
    other forms (fractional seconds, missing zone = UTC, one-digit day) go through a regex per
    value. Month names are English and case-insensitive, whatever the locale.

    Parameters
    ----------
    values : array-like of str

    Returns
    -------
    numpy.ndarray
        float64 epoch seconds; NaN where a value is not a valid time.
    """
    values = np.asarray(values, dtype=object)
    out = np.full(len(values), np.nan)
    if len(values) == 0:
        return out
    lengths = np.fromiter(
        (len(v) if isinstance(v, str) else 0 for v in values), dtype=np.int64, count=len(values)
    )
    fast = np.flatnonzero(lengths == 26)
    done = np.zeros(len(values), dtype=bool)
    if fast.size:
        c = np.array(values[fast].tolist(), dtype="<U26").view(np.uint32).reshape(-1, 26)
        c = c.astype(np.int64)
        dig = c[:, _DIGITS] - 48
        ok = ((dig >= 0) & (dig <= 9)).all(axis=1)
        ok &= (c[:, 2] == 47) & (c[:, 6] == 47) & (c[:, 11] == 58) & (c[:, 14] == 58)
        ok &= (c[:, 17] == 58) & (c[:, 20] == 32) & ((c[:, 21] == 43) | (c[:, 21] == 45))
        key = ((c[:, 3] | 32) << 16) | ((c[:, 4] | 32) << 8) | (c[:, 5] | 32)
        month = np.zeros(len(c), dtype=np.int64)
        for i, k in enumerate(_MONTH_KEYS, start=1):
            month[key == k] = i
        dig = np.where(ok[:, None], dig, 0)
        day = dig[:, 0] * 10 + dig[:, 1]
        year = dig[:, 2] * 1000 + dig[:, 3] * 100 + dig[:, 4] * 10 + dig[:, 5]
        hour = dig[:, 6] * 10 + dig[:, 7]
        minute = dig[:, 8] * 10 + dig[:, 9]
        sec = dig[:, 10] * 10 + dig[:, 11]
        offset = (dig[:, 12] * 10 + dig[:, 13]) * 3600 + (dig[:, 14] * 10 + dig[:, 15]) * 60
        offset = np.where(c[:, 21] == 45, -offset, offset)
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        mdays = _DAYS_IN_MONTH[np.clip(month - 1, 0, 11)] + ((month == 2) & leap)
        ok &= (month > 0) & (day >= 1) & (day <= mdays) & (hour < 24) & (minute < 60)
        ok &= sec < 61
        days = _days_from_civil(year, np.maximum(month, 1), day)
        epoch = days * 86400 + hour * 3600 + minute * 60 + sec - offset
        out[fast[ok]] = epoch[ok]
        done[fast[ok]] = True
    for i in np.flatnonzero(~done):
        out[i] = _clf_slow(values[i])
    return out


def _set(values: np.ndarray) -> np.ndarray:
    """True where an object array of str / tuple / None holds a non-empty value."""
    return np.asarray(values, dtype=object).astype(bool)


def _present(values: np.ndarray) -> np.ndarray:
    """Object array with ``""`` and ``-`` (and None) turned into None."""
    values = np.asarray(values, dtype=object)
    absent = ~_set(values) | (values == "-")
    if absent.any():
        values = values.copy()
        values[absent] = None
    return values


def _map_present(values: np.ndarray, fn: Callable[[str], object]) -> np.ndarray:
    """``fn`` applied once per distinct non-None value; None stays None."""
    out = np.full(len(values), None, dtype=object)
    idx = np.flatnonzero(_set(values))
    if idx.size:
        codes, uniques = pd.factorize(values[idx])
        mapped = np.empty(len(uniques), dtype=object)
        mapped[:] = [fn(u) for u in uniques]
        out[idx] = mapped[codes]
    return out


def _parse_request_lines(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Request lines (``GET /a?b HTTP/1.1``) → (upper-case methods, targets), vectorised in
    Arrow (RE2); None for both where a line is absent or malformed (the target must be a path,
    ``*`` or an absolute URL, except for ``CONNECT host:port``)."""
    method = np.full(len(raw), None, dtype=object)
    target = np.full(len(raw), None, dtype=object)
    idx = np.flatnonzero(_set(raw))
    if not idx.size:
        return method, target
    parts = pc.extract_regex(pa.array(raw[idx].tolist(), type=pa.string()), _REQUEST_LINE)
    m = pc.utf8_upper(parts.field("method"))
    t = parts.field("target")
    ok = pc.fill_null(pc.or_(pc.match_substring_regex(t, _TARGET_START),
                             pc.equal(m, "CONNECT")), False)
    good = idx[ok.to_numpy(zero_copy_only=False)]
    if good.size:
        methods = pc.dictionary_encode(m.filter(ok))  # one Python string per distinct method
        method[good] = methods.dictionary.to_numpy(zero_copy_only=False).astype(object)[
            methods.indices.to_numpy()]
        target[good] = t.filter(ok).to_numpy(zero_copy_only=False)
    return method, target


def _split_one(target: str) -> tuple[str, str | None]:
    red = redact_url(target)
    head, sep, query = red.partition("?")
    head = head.partition("#")[0]
    query = query.partition("#")[0]
    return head, (query or None)


def split_targets(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Request targets → (path without query, redacted query without ``?`` or None).

    Every target goes through :func:`~driftbayes.redact.redact_url` first (secret query values
    and ``user:password@`` removed); each distinct target is handled once.
    """
    targets = np.asarray(targets, dtype=object)
    paths = np.full(len(targets), None, dtype=object)
    queries = np.full(len(targets), None, dtype=object)
    present = np.flatnonzero(_set(targets))
    if not present.size:
        return paths, queries
    # a target without "?", "#" or "@" is its own path with no query: only the others need
    # redact_url and splitting, once per distinct target
    plain = pc.invert(pc.match_substring_regex(
        pa.array(targets[present].tolist(), type=pa.string()), "[?#@]")).to_numpy(
            zero_copy_only=False)
    paths[present[plain]] = targets[present[plain]]
    idx = present[~plain]
    if idx.size:
        parts = _map_present(targets[idx], _split_one)
        paths[idx] = [p for p, _ in parts]
        queries[idx] = [q for _, q in parts]
    return paths, queries


def _numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float values, present mask): None / ``""`` / ``-`` are not present; other text → NaN.

    Each distinct text is converted once (status codes and epoch seconds repeat a lot).
    """
    values = _present(values)
    present = _set(values)
    out = np.full(len(values), np.nan)
    if present.any():
        codes, uniques = pd.factorize(values[present])
        nums = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce")
        out[present] = nums.to_numpy(dtype=np.float64, na_value=np.nan)[codes]
    return out, present


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsing creates ~10 container objects per line and
    none of them form cycles, so collections would only cost time (about 30 %)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def text_batches(f: io.BufferedIOBase, batch_size: int, first: int = 1
                 ) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, lines)`` of a binary file, ``batch_size`` physical lines each.

    Lines are decoded as UTF-8 (invalid bytes → U+FFFD) and lose their ``\\n``; a UTF-8
    byte-order mark at the start is dropped. Batches keep to the file's grid of ``batch_size``
    lines from line 1: reading from line ``first`` (a byte range), the first batch is shorter.
    """
    size = batch_size - (first - 1) % batch_size
    pending: list[str] = []
    tail = b""
    while chunk := f.read(_CHUNK_BYTES):
        cut = chunk.rfind(b"\n") + 1
        if not cut:  # no newline in this chunk: part of one long line
            tail += chunk
            continue
        text = (tail + chunk[:cut]).decode("utf-8", "replace")
        tail = chunk[cut:]
        if first == 1 and not pending:
            text = text.removeprefix("\ufeff")
        lines = text.split("\n")
        lines.pop()  # "" after the final newline
        pending.extend(lines)
        while len(pending) >= size:
            yield first, pending[:size]
            del pending[:size]
            first += size
            size = batch_size
    if tail:
        text = tail.decode("utf-8", "replace")
        pending.append(text.removeprefix("\ufeff") if first == 1 and not pending else text)
    if pending:
        yield first, pending


def _show(text: str | None) -> str:
    return show_value(text, 80)


def match_lines(
    regex: re.Pattern[str], lines: list[str], *, search: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Match every line with ``regex``: anchored at the line start, or anywhere (``search``).

    Returns
    -------
    groups : dict of str to numpy.ndarray
        Named group → object column over the matched lines (None where an optional group did
        not take part).
    kept : numpy.ndarray
        Positions in ``lines`` of the matched lines.
    missed : numpy.ndarray
        Positions of the non-blank lines that did not match.
    """
    matches = list(map(regex.search if search else regex.match, lines))
    hit = np.fromiter((m is not None for m in matches), dtype=bool, count=len(lines))
    kept = np.flatnonzero(hit)
    missed = np.array([i for i in np.flatnonzero(~hit) if lines[i].strip()], dtype=np.int64)
    rows = [matches[i].groups() for i in kept] if len(kept) < len(lines) else [
        m.groups() for m in matches]
    columns = list(zip(*rows)) if rows else [()] * regex.groups
    groups: dict[str, np.ndarray] = {}
    for name, index in regex.groupindex.items():
        col = np.empty(len(rows), dtype=object)
        col[:] = columns[index - 1]
        groups[name] = col
    return groups, kept, missed


# --------------------------------------------------------------------------------------------
# one batch


class _Flags:
    """First bad field and reason per row (rows flagged earlier keep their first reason)."""

    def __init__(self, n: int):
        self.bad: dict[int, tuple[str, str]] = {}
        self.ok = np.ones(n, dtype=bool)

    def flag(self, field: str, mask: np.ndarray, reason: Callable[[int], str]) -> None:
        for i in np.flatnonzero(mask & self.ok):
            self.bad[int(i)] = (field, reason(int(i)))
        self.ok &= ~mask


def _timestamps(groups: dict[str, np.ndarray], flags: _Flags) -> np.ndarray:
    n = len(flags.ok)
    if "ts_clf" in groups:
        raw = groups["ts_clf"]
        ts = clf_to_epoch(raw)
    elif "ts_iso" in groups:
        raw = groups["ts_iso"]
        ts = iso_to_epoch(raw)
    else:
        for name, scale in (("ts_s", 1.0), ("ts_ms", 1e-3), ("ts_us", 1e-6)):
            if name in groups:
                raw = groups[name]
                ts = _numbers(raw)[0] * scale
                break
        else:
            raw = np.full(n, None, dtype=object)
            ts = np.full(n, np.nan)
    flags.flag("ts", ~np.isfinite(ts), lambda i: f"not a valid time: {_show(raw[i])}")
    return ts


def _requests(groups: dict[str, np.ndarray], flags: _Flags) -> tuple[np.ndarray, np.ndarray]:
    """(upper-case methods, targets) from ``request`` or ``method`` + ``url``/``path``/``query``."""
    n = len(flags.ok)
    if "request" in groups:
        raw = groups["request"]
        method, target = _parse_request_lines(raw)
        ok = _set(method)
        flags.flag("request", ~ok, lambda i: f"malformed request line {_show(raw[i])}")
        return method, target
    if "url" in groups:
        target = _present(groups["url"])
    else:
        target = _present(groups["path"])
        if "query" in groups:
            query = _present(groups["query"])
            has = _set(query) & _set(target)
            if has.any():
                q = np.array([s.lstrip("?") for s in query[has]], dtype=object)
                target = target.copy()
                target[has] = target[has] + "?" + q
    if "method" in groups:
        raw_method = _present(groups["method"])
        method = _map_present(
            raw_method, lambda m: m.upper() if _METHOD.fullmatch(m) else None
        )
    else:
        method = np.full(n, "GET", dtype=object)
    ok = _set(method) & _set(target)
    ok[ok] = [bool(_TARGET.match(t)) for t in target[ok]]
    flags.flag(
        "request",
        ~ok,
        lambda i: f"malformed request: method {_show(groups.get('method', [None] * n)[i])}, "
        f"target {_show(target[i])}",
    )
    return method, target


def _latency(groups: dict[str, np.ndarray], flags: _Flags) -> np.ndarray:
    n = len(flags.ok)
    for name, scale in (("rt_us", 1e-3), ("rt_ms", 1.0), ("rt_s", 1e3), ("rt_auto", None)):
        if name in groups:
            raw = groups[name]
            values, present = _numbers(raw)
            if scale is None:  # a decimal point → seconds, an integer → microseconds
                dot = pd.Series(raw, dtype=object).str.contains(".", regex=False, na=False)
                latency = values * np.where(dot.to_numpy(dtype=bool), 1e3, 1e-3)
            else:
                latency = values * scale
            bad = present & ~(np.isfinite(latency) & (latency >= 0))
            flags.flag("latency_ms", bad, lambda i: f"not a response time: {_show(raw[i])}")
            return latency
    return np.full(n, np.nan)


def _status(groups: dict[str, np.ndarray], flags: _Flags) -> np.ndarray:
    n = len(flags.ok)
    if "status" not in groups:
        return np.zeros(n, dtype=np.int32)
    raw = groups["status"]
    status, present = _numbers(raw)
    with np.errstate(invalid="ignore"):
        ok = (status >= 100) & (status <= 599) & (status == np.floor(status))
    flags.flag("status", present & ~ok, lambda i: f"not a status in 100-599: {_show(raw[i])}")
    return np.where(ok, status, 0).astype(np.int32)


def _convert(groups: dict[str, np.ndarray], n: int) -> tuple[dict, dict, _Flags]:
    """Canonical columns, extra columns and per-row flags of matched access-log lines."""
    flags = _Flags(n)
    ts = _timestamps(groups, flags)
    method, target = _requests(groups, flags)
    status = _status(groups, flags)
    latency = _latency(groups, flags)
    paths, query = split_targets(target)
    endpoint = np.full(n, None, dtype=object)
    good = _set(paths)
    if good.any():
        endpoint[good] = template_paths(paths[good])

    none = np.full(n, None, dtype=object)
    ip = _present(groups.get("ip", none))
    user = _present(groups.get("user", none))
    agent = _present(groups.get("user_agent", none))
    referer = _map_present(_present(groups.get("referer", none)), redact_url)
    client = ip.copy()
    both = _set(ip) & _set(agent)
    if both.any():
        client[both] = ip[both] + " " + agent[both]
    cols = {
        "ts": ts,
        "method": method,
        "endpoint": endpoint,
        "status": status,
        "latency_ms": latency,
        "persona": np.full(n, DEFAULT_PERSONA, dtype=object),
        "session": np.full(n, "", dtype=object),
    }
    extra = {"client": client, "user": user, "user_agent": agent, "referer": referer,
             "query": query}
    return cols, extra, flags


def assemble(
    cols: dict[str, np.ndarray],
    extra: dict[str, np.ndarray],
    flags: _Flags,
    kept: np.ndarray,
    first: int,
    source: str,
    bad: list[BadRecord],
) -> EventBatch:
    """The batch of good rows; the bad ones are appended to ``bad`` (then sorted by line)."""
    bad += [BadRecord(source, first + int(kept[i]), f, r) for i, (f, r) in flags.bad.items()]
    bad.sort(key=lambda b: b.line)
    ok = flags.ok
    return EventBatch(
        **{k: v[ok] for k, v in cols.items()},
        line=kept[ok] + first,
        source=source,
        extra={k: v[ok] for k, v in extra.items()},
    )


def _read_batch(
    lines: list[str], first: int, fmt: _Format, source: str
) -> tuple[EventBatch, list[BadRecord]]:
    if first == 1 and fmt.header is not None and lines and fmt.header.match(lines[0]):
        lines = ["", *lines[1:]]
    groups, kept, missed = match_lines(fmt.regex, lines)
    bad = [
        BadRecord(source, first + int(i), "line",
                  f"does not match the {fmt.name} format: {_show(lines[i])}")
        for i in missed
    ]
    cols, extra, flags = _convert(groups, len(kept))
    return assemble(cols, extra, flags, kept, first, source, bad), bad


# --------------------------------------------------------------------------------------------
# sniffing and reading


def sniff_access_log(head: bytes) -> str | None:
    """Which access-log format the first bytes of a file look like.

    Parameters
    ----------
    head : bytes
        The start of the file (a few KiB are plenty); gzip is decompressed.

    Returns
    -------
    {"combined", "common", "auto", "nasa-tsv"} or None
        ``"nasa-tsv"`` when the first line is the NASA TSV header (or every line has its nine
        tab-separated fields with numeric time); ``"combined"`` / ``"common"`` when more than
        half of the first 20 non-blank complete lines match the ``"auto"`` regex (combined if
        any of them has a referer and user agent), ``"auto"`` when any of them ends with a
        response time (nginx ``$request_time``, Apache ``%D``); otherwise None.
    """
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1 << 20)
        except zlib.error:
            return None
    text = head.decode("utf-8", "replace").removeprefix("\ufeff")
    lines = text.split("\n")
    if len(lines) > 1:
        lines.pop()  # empty after a final newline, else a partial line
    lines = [line for line in lines if line.strip()][:_SNIFF_LINES]
    if not lines:
        return None
    if _NASA_HEADER.match(lines[0]):
        return "nasa-tsv"
    nasa = re.compile(LOG_FORMATS["nasa-tsv"])
    if all((m := nasa.match(line)) and m.group("ts_s").isdigit() for line in lines):
        return "nasa-tsv"
    auto = re.compile(_AUTO)
    matches = [m for m in map(auto.match, lines) if m is not None]
    if 2 * len(matches) <= len(lines):
        return None
    if any(m.group("rt_auto") is not None for m in matches):
        return "auto"  # a trailing response time, which only "auto" reads
    return "combined" if any(m.group("user_agent") is not None for m in matches) else "common"


def read_access_log(
    path: str | PathLike[str],
    *,
    log_format: str = "auto",
    batch_size: int = 65536,
    strict: bool = False,
    report: BadRecordReport | None = None,
    byte_range: tuple[int, int] | None = None,
    first_line: int = 1,
) -> Iterator[EventBatch]:
    """Stream a web server access log as :class:`EventBatch` es.

    Parameters
    ----------
    path : str or path-like
        Log file; gzip is detected and decompressed; ``-`` reads stdin.
    log_format : str
        ``"auto"``, a preset (``"common"``, ``"combined"``, ``"combined_rt"``, ``"nasa-tsv"``),
        an nginx ``log_format`` string or an Apache ``LogFormat`` string (module docstring).
    batch_size : int
        Physical lines per batch (a batch holds at most this many events).
    strict : bool
        Raise :class:`~driftbayes.events.BadRecordError` at the first bad line (its batch is not
        yielded) instead of skipping it.
    report : BadRecordReport, optional
        Collects skipped lines. Without one, a warning summarises them at the end.
    byte_range, first_line
        Read only bytes ``start:end`` of an uncompressed file, starting at its line
        ``first_line`` (as :func:`~driftbayes.io.jsonl.read_jsonl`); ``"auto"`` still sniffs
        the file's first bytes.

    Yields
    ------
    EventBatch
        Good events in file order with ``extra`` keys ``client``, ``user``, ``user_agent``,
        ``referer``, ``query``; ``line`` is the 1-based physical line. Empty batches are not
        yielded.

    Raises
    ------
    ValueError
        At the call (before iteration) for an unknown or unusable ``log_format``.
    """
    check_input(path, batch_size)
    fmt = None if log_format == "auto" else _format(log_format)
    return _iter_access_log(path, fmt, batch_size, strict, report, byte_range, first_line)


def _iter_access_log(
    path: str | PathLike[str],
    fmt: _Format | None,
    batch_size: int,
    strict: bool,
    report: BadRecordReport | None,
    byte_range: tuple[int, int] | None = None,
    first_line: int = 1,
) -> Iterator[EventBatch]:
    with reading(path, report) as scope:
        source = scope.source
        with open_input(path, byte_range) as f:
            if fmt is None:
                if byte_range is None:
                    head = f.peek(1 << 16) if hasattr(f, "peek") else b""
                else:
                    with open_input(path) as whole:
                        head = whole.peek(1 << 16)
                fmt = _format("nasa-tsv" if sniff_access_log(head) == "nasa-tsv" else "auto")
            for first, lines in text_batches(f, batch_size, first_line):
                with no_gc():
                    batch, bad = _read_batch(lines, first, fmt, source)
                batch = scope.accept(batch, bad, strict=strict)
                if len(batch):
                    yield batch

