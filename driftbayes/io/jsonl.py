"""Canonical JSON Lines reader: one event object per line, streamed as :class:`EventBatch` es.

Each line is one JSON object (DESIGN.md §2)::

    {"ts": 1700000000.25, "method": "GET", "path": "/api/users/42", "status": 200,
     "latency_ms": 12.5, "persona": "mobile", "session": "s-17"}

============== ======== ================================================================
field          required meaning
============== ======== ================================================================
``ts``         yes      epoch seconds (number) or ISO 8601 string (naive = UTC, ``Z`` ok).
                        Numbers with ``abs(ts) >= 1e11`` are epoch **milliseconds**,
                        ``>= 1e14`` microseconds and ``>= 1e17`` nanoseconds (each threshold
                        is 1973-03-03 in that unit, so any later epoch is unambiguous).
``method``     no       string, upper-cased; missing/null/"" → ``"GET"``
``path``       yes*     request path, templated by :func:`driftbayes.templates.template_path`
``endpoint``   no       endpoint template, used as is; when present (not null/"") it wins over
                        ``path``, which then is not required (*)
``status``     yes      integer 100–599 (an integral JSON number such as ``200.0`` is accepted)
``latency_ms`` no       finite number ≥ 0; missing/null → NaN (not recorded)
``persona``    no       string (field name configurable); missing/null/"" → ``"default"``
``session``    no       string or number (→ str); missing/null → ``""``
============== ======== ================================================================

Unknown fields are ignored; for the optional string fields null and ``""`` mean absent. A
present-but-ill-typed field, a missing required field, an out-of-range value, invalid JSON or
non-UTF-8 bytes reject the **whole** line. Blank lines are skipped silently. Line numbers are
1-based physical lines.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import sys
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat
from os import PathLike

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from driftbayes.events import (
    DEFAULT_PERSONA,
    BadRecord,
    BadRecordReport,
    EventBatch,
    reading,
    show_value,
    source_name,
)
from driftbayes.templates import template_paths, template_paths_arrow

__all__ = ["check_input", "epoch_seconds", "iso_to_epoch", "map_unique", "open_input", "read_jsonl"]

_CHUNK_BYTES = 1 << 20
_DEEP_BYTES = 2048  # lines longer than this are checked for nesting orjson refuses (> 1024)
_GZIP_MAGIC = b"\x1f\x8b"

# Value kinds, from type(); bool is its own kind so True never passes as a number.
_NONE, _BOOL, _INT, _FLOAT, _STR, _OTHER = range(6)
_KIND = {type(None): _NONE, bool: _BOOL, int: _INT, float: _FLOAT, str: _STR}
_NUMBER_TYPES = {int, float}
_NUMBER_OR_ABSENT = {int, float, type(None)}
_ABSENT = float("nan")

try:  # C helper behind DataFrame(list_of_dicts): ~3x faster than one dict.get pass per key
    from pandas._libs.lib import dicts_to_array as _dicts_to_array
except ImportError:  # pragma: no cover
    _dicts_to_array = None

_OUTPUT = ("ts", "method", "endpoint", "status", "latency_ms", "persona", "session")

# Fields in the order a bad line reports them (the first failing one is named).
_FIELDS = ("json", "ts", "method", "path", "endpoint", "status", "latency_ms", "persona", "session")


# --------------------------------------------------------------------------------------------
# opening and line batching


@contextmanager
def open_input(path: str | PathLike[str], byte_range: tuple[int, int] | None = None
               ) -> Iterator[io.BufferedIOBase]:
    """Open ``path`` for binary reading; ``-`` is stdin, gzip is detected by its magic bytes.

    ``byte_range=(start, end)`` reads only those bytes of an uncompressed file (one partition
    of a file split at line starts, :mod:`driftbayes.io.partitions`).
    """
    if byte_range is not None:
        start, end = byte_range
        with open(path, "rb") as raw:
            if raw.peek(2)[:2] == _GZIP_MAGIC:
                raise ValueError(f"{path}: a gzip file is read whole, not by byte range")
            raw.seek(start)
            with io.BufferedReader(_RangeStream(raw, end - start), 1 << 16) as part:
                yield part
        return
    if str(path) == "-":
        raw = sys.stdin.buffer
        owned = False
    else:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
        owned = True
    try:
        if not hasattr(raw, "peek"):
            raw = io.BufferedReader(raw)
        if raw.peek(2)[:2] == _GZIP_MAGIC:
            with io.BufferedReader(_GunzipStream(raw, source_name(path)), 1 << 16) as gz:
                yield gz
        else:
            yield raw
    finally:
        if owned:
            raw.close()


class _RangeStream(io.RawIOBase):
    """The next ``size`` bytes of a binary file, then end of file."""

    def __init__(self, raw, size: int):
        self.raw, self.left = raw, max(int(size), 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        if n == 0:
            return 0
        got = self.raw.readinto(memoryview(buffer)[:n])
        self.left -= got
        return got


class _GunzipStream(io.RawIOBase):
    """Decompresses a gzip stream (any number of members) and, where it ends early — a missing
    trailer, a file cut anywhere — keeps everything that inflated and warns once naming the
    file instead of raising. Corrupt data raises :class:`zlib.error` as before."""

    def __init__(self, raw, source: str):
        self.raw, self.source = raw, source
        self.z = zlib.decompressobj(wbits=31)
        self.carry = b""  # compressed bytes after a member's end: the next member
        self.pending = b""
        self.held = b""  # decompressed bytes after the last newline, not yet handed out
        self.seen_newline = False
        self.in_member = False
        self.done = False
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.raw.seekable()

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Rewind (the only seek supported: to the start) and decompress again."""
        if (offset, whence) not in ((0, io.SEEK_SET), (0, io.SEEK_CUR)):
            raise io.UnsupportedOperation("a gzip stream can only be rewound to its start")
        if whence == io.SEEK_SET:
            self.raw.seek(0)
            self.z, self.carry, self.pending = zlib.decompressobj(wbits=31), b"", b""
            self.held, self.seen_newline = b"", False
            self.in_member = self.done = False
            self.pos = 0
        return self.pos

    def readinto(self, buffer) -> int:
        while not self.pending and not self.done:
            data, self.carry = self.z.unconsumed_tail or self.carry or self.raw.read(
                _CHUNK_BYTES), b""
            if not data:
                self.done = True
                if self.in_member:  # cut inside a member: its last line is incomplete
                    warnings.warn(f"{self.source}: compressed stream ends early (truncated "
                                  ".gz); kept every complete record before the cut",
                                  stacklevel=2)
                    # the cut last line is dropped, but for a one-line JSON document (a
                    # minified HAR), whose reader keeps the entries before the cut
                    one_doc = not self.seen_newline and self.held.lstrip()[:1] == b"{"
                    self.pending = self.held if one_doc else b""
                else:
                    self.pending = self.held
                self.held = b""
                break
            self.in_member = True
            out = self.held + self.z.decompress(data, _CHUNK_BYTES)
            if self.z.eof:  # end of a member; another may follow (zero padding is ignored)
                rest = self.z.unused_data
                self.z = zlib.decompressobj(wbits=31)
                self.in_member = False
                self.carry = rest if rest.strip(b"\0") else b""
            # hold back the bytes after the last newline until the stream is known complete
            # (a line format's cut line could read as a shorter valid record)
            cut = out.rfind(b"\n")
            if cut >= 0:
                self.seen_newline = True
                self.pending, self.held = out[: cut + 1], out[cut + 1:]
            else:
                self.pending, self.held = b"", out
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.pos += n
        return n


def _line_batches(f: io.BufferedIOBase, batch_size: int, first: int = 1
                  ) -> Iterator[tuple[int, list[bytes]]]:
    """``(first line number, lines)`` with ``batch_size`` physical lines each (last: fewer).

    Lines lose their ``\\n``; a final line without newline is still a line. Batches keep to the
    file's grid of ``batch_size`` lines from line 1: reading from line ``first`` (a byte range
    of the file), the first batch is shorter.
    """
    pending: list[bytes] = []
    tail: list[bytes] = []
    size = batch_size - (first - 1) % batch_size
    while chunk := f.read(_CHUNK_BYTES):
        parts = chunk.split(b"\n")
        if len(parts) == 1:  # no newline in this chunk: part of one long line
            tail.append(chunk)
            continue
        if tail:
            tail.append(parts[0])
            parts[0] = b"".join(tail)
        last = parts.pop()
        tail = [last] if last else []
        pending.extend(parts)
        while len(pending) >= size:
            yield first, pending[:size]
            del pending[:size]
            first += size
            size = batch_size
    if tail:
        pending.append(b"".join(tail))
    if pending:
        yield first, pending


# --------------------------------------------------------------------------------------------
# vectorised helpers shared with the other readers


def epoch_seconds(values: np.ndarray) -> np.ndarray:
    """Numeric epoch timestamps → seconds, detecting ms / µs / ns by magnitude (≥1e11/1e14/1e17)."""
    v = np.asarray(values, dtype=np.float64)
    a = np.abs(v)
    scale = np.select([a >= 1e17, a >= 1e14, a >= 1e11], [1e-9, 1e-6, 1e-3], 1.0)
    return v * scale


def iso_to_epoch(strings: list[str] | np.ndarray) -> np.ndarray:
    """ISO 8601 strings → float epoch seconds (naive = UTC); NaN where unparseable.

    Years outside pandas' nanosecond range (1677–2262, e.g. 9999) still convert, through
    :meth:`datetime.datetime.fromisoformat`, so that the caller can reject them by value.
    """
    if len(strings) == 0:
        return np.empty(0, dtype=np.float64)
    try:
        dt = pd.to_datetime(
            pd.Series(strings, dtype=object), utc=True, format="ISO8601", errors="coerce"
        )
        return ((dt - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError, TypeError):
        return map_unique(np.asarray(strings, dtype=object), _iso_one).astype(np.float64)


def _iso_one(text: object) -> float:
    """One ISO 8601 string → epoch seconds (naive = UTC), NaN when it is not one."""
    if not isinstance(text, str):
        return math.nan
    try:
        stamp = pd.Timestamp(text)
        return float((stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp())
    except (ValueError, OverflowError, TypeError, pd.errors.OutOfBoundsDatetime):
        pass
    try:
        t = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return math.nan
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def map_unique(values: np.ndarray, fn) -> np.ndarray:
    """Apply ``fn`` once per distinct value of an object array; object array out."""
    values = np.asarray(values, dtype=object)
    if values.size == 0:
        return np.empty(0, dtype=object)
    codes, uniques = pd.factorize(values)
    return np.array([fn(u) for u in uniques], dtype=object)[codes]


def _table(objs: list[dict], keys: list[str]) -> list[tuple[np.ndarray, list]]:
    """Per key, (object array, list) of ``obj.get(key)``; an absent key gives float NaN.

    orjson never produces NaN, so NaN always means absent.
    """
    if _dicts_to_array is not None:
        try:
            table = _dicts_to_array(objs, keys)
        except Exception:  # pragma: no cover - private pandas helper changed
            pass
        else:
            # copies, so a column kept downstream does not pin the whole table
            return [(table[:, j].copy(), table[:, j].tolist()) for j in range(len(keys))]
    cols = []
    for k in keys:
        col = [o.get(k, _ABSENT) for o in objs]
        cols.append((np.fromiter(col, dtype=object, count=len(col)), col))
    return cols


def _kinds(col: list) -> np.ndarray:
    """Per-entry kind codes; absent (None or NaN) → ``_NONE``."""
    kinds = np.fromiter(
        map(_KIND.get, map(type, col), repeat(_OTHER)), dtype=np.int8, count=len(col)
    )
    floats = np.flatnonzero(kinds == _FLOAT)
    if floats.size:
        values = np.array([col[i] for i in floats], dtype=np.float64)
        kinds[floats[np.isnan(values)]] = _NONE
    return kinds


def _numbers(col: list) -> tuple[np.ndarray, np.ndarray | None]:
    """(float values with NaN where absent or not a number, kinds or None if all number/absent)."""
    if set(map(type, col)) <= _NUMBER_OR_ABSENT:
        return np.array(col, dtype=np.float64), None
    kinds = _kinds(col)
    out = np.full(len(col), np.nan)
    idx = np.flatnonzero((kinds == _INT) | (kinds == _FLOAT))
    if idx.size:
        out[idx] = np.array([col[i] for i in idx], dtype=np.float64)
    return out, kinds


def _strings(
    arr: np.ndarray, col: list, *, allow_numbers: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object values, present mask, wrong-type mask) of a string field.

    Absent, null and ``""`` are not present (and not wrong); numbers are converted with ``str``
    when ``allow_numbers``; any other type is wrong. The values are ``arr`` itself when all
    are present, else a copy.
    """
    n = len(col)
    types = set(map(type, col))
    if types == {str}:
        if "" not in col:  # C-speed scan of the list, the common case
            return arr, np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
        return arr.copy(), arr != "", np.zeros(n, dtype=bool)
    if types <= _NUMBER_OR_ABSENT - {int} and np.isnan(np.array(col, dtype=np.float64)).all():
        return np.full(n, None, dtype=object), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    kinds = _kinds(col)
    arr = arr.copy()
    present = kinds == _STR
    wrong = ~present & (kinds != _NONE)
    if allow_numbers:
        num = (kinds == _INT) | (kinds == _FLOAT)
        for i in np.flatnonzero(num):
            arr[i] = str(col[i])
        wrong &= ~num
        present |= num
    present[present] = arr[present] != ""
    return arr, present, wrong


# --------------------------------------------------------------------------------------------
# per-line explanations (only ever run for rejected lines)




def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _explain(field: str, obj: dict, persona_field: str) -> str:
    key = persona_field if field == "persona" else field
    v = obj.get(key)
    if v is None or (field == "path" and v == ""):
        return "missing (and no 'endpoint')" if field == "path" else "missing"
    if field == "ts":
        if isinstance(v, str):
            return f"not an ISO 8601 timestamp: {show_value(v)}"
        if type(v) in _NUMBER_TYPES:
            return f"not finite: {show_value(v)}"
        return f"expected epoch seconds or ISO 8601 string, got {_type_name(v)}"
    if field == "status":
        if type(v) not in _NUMBER_TYPES:
            return f"expected an integer, got {_type_name(v)} {show_value(v)}"
        if not float(v).is_integer():
            return f"not an integer: {show_value(v)}"
        return f"out of range 100-599: {show_value(v)}"
    if field == "latency_ms":
        if type(v) not in _NUMBER_TYPES:
            return f"expected a number, got {_type_name(v)} {show_value(v)}"
        if not math.isfinite(v):
            return f"not finite: {show_value(v)}"
        return f"negative: {show_value(v)}"
    if field == "session":
        return f"expected a string or number, got {_type_name(v)}"
    return f"expected a string, got {_type_name(v)} {show_value(v)}"


def _explain_json(line: bytes, error: Exception | None, obj: object) -> str:
    if error is None:
        return f"expected a JSON object, got {_type_name(obj)}"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {exc.start})"
    return f"invalid JSON: {error}"


# --------------------------------------------------------------------------------------------
# parsing one batch


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _big_int(text: str) -> int | float:
    return int(text) if len(text) < 300 else float(text)  # beyond ~1e308: inf, rejected later


def loads_lenient(line: bytes) -> object:
    """Decode one JSON value: :func:`orjson.loads`, else (numbers orjson cannot hold in a double,
    such as a 400-digit integer) the standard library, whose overflowing numbers become
    ``inf`` for the field checks to reject; raises :class:`ValueError` when neither decodes it
    (invalid JSON, NaN/Infinity, nesting deeper than 1024 levels)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if "number" not in str(exc):
            raise
        try:
            return json.loads(line, parse_int=_big_int, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise exc from None


def _parse_lines(lines: list[bytes]) -> tuple[list, np.ndarray, dict[int, Exception | None]]:
    """orjson-decode ``lines``: (objects, kept positions, {position: error} of bad lines).

    Blank lines are neither kept nor bad. Non-objects are bad with error ``None``.
    """
    loads = loads_lenient
    try:  # fast path: every line is one JSON value (no blank, no broken lines)
        objs = list(map(loads, lines))
        kept = np.arange(len(lines))
        bad: dict[int, Exception | None] = {}
    except ValueError:
        objs, keep_list, bad = [], [], {}
        for i, line in enumerate(lines):
            try:
                objs.append(loads(line))
                keep_list.append(i)
            except ValueError as exc:
                if line.isspace() or not line:
                    continue
                bad[i] = exc
        kept = np.array(keep_list, dtype=np.int64)
    if set(map(type, objs)) - {dict}:
        is_obj = np.fromiter((type(o) is dict for o in objs), dtype=bool, count=len(objs))
        for j in np.flatnonzero(~is_obj):
            bad[int(kept[j])] = None
        objs = [o for o, ok in zip(objs, is_obj, strict=True) if ok]
        kept = kept[is_obj]
    return objs, kept, bad


def _flag(bad: np.ndarray, field: str, mask: np.ndarray) -> None:
    """Mark ``field`` as the first bad field of the rows in ``mask`` (earlier fields win)."""
    if mask.any():
        code = _FIELDS.index(field)
        np.copyto(bad, np.int8(code), where=mask & ((bad == 0) | (bad > code)))


def _check_values(bad, ts, missing_path, status, latency) -> np.ndarray:
    """Flag out-of-range values (both parse paths); returns the rows whose status is valid."""
    _flag(bad, "ts", ~np.isfinite(ts))
    _flag(bad, "path", missing_path)
    with np.errstate(invalid="ignore"):
        ok = (status >= 100) & (status <= 599) & (status == np.floor(status))
    _flag(bad, "status", ~ok)
    _flag(bad, "latency_ms", (latency < 0) | np.isinf(latency))
    return ok


def _columns(objs: list[dict], persona_field: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Canonical columns of decoded objects and, per row, the index in ``_FIELDS`` of its first
    bad field (0 = the row is fine)."""
    n = len(objs)
    bad = np.zeros(n, dtype=np.int8)
    if n == 0:
        empty = EventBatch.empty()
        return {k: getattr(empty, k) for k in _OUTPUT}, bad

    def flag(field: str, mask: np.ndarray) -> None:
        _flag(bad, field, mask)

    keys = ["ts", "method", "path", "endpoint", "status", "latency_ms", persona_field, "session"]
    c_ts, c_method, c_path, c_endpoint, c_status, c_latency, c_persona, c_session = _table(
        objs, keys
    )

    # ts: epoch number (unit by magnitude) or ISO 8601 string
    ts, kinds = _numbers(c_ts[1])
    ts = epoch_seconds(ts)
    if kinds is not None:
        strs = np.flatnonzero(kinds == _STR)
        if strs.size:
            ts[strs] = iso_to_epoch(c_ts[0][strs])

    # method: upper-cased, absent → GET
    method, present, wrong = _strings(*c_method)
    flag("method", wrong)
    if not present.all():
        method[~present] = "GET"
    if any(m != m.upper() for m in set(method.tolist())):
        method = map_unique(method, str.upper)

    # endpoint wins; otherwise the templated path
    endpoint, has_ep, wrong_ep = _strings(*c_endpoint)
    path, has_path, wrong_path = _strings(*c_path)
    flag("path", wrong_path)
    flag("endpoint", wrong_ep)
    need = ~has_ep & has_path
    if need.all():
        endpoint = template_paths(path)
    elif need.any():
        endpoint[need] = template_paths(path[need])

    status, _ = _numbers(c_status[1])  # required integer 100-599
    latency, kinds = _numbers(c_latency[1])  # optional finite number >= 0
    if kinds is not None:
        flag("latency_ms", (kinds != _NONE) & (kinds != _INT) & (kinds != _FLOAT))
    ok = _check_values(bad, ts, ~has_ep & ~has_path, status, latency)

    # persona (absent → default), session (absent → "")
    persona, present, wrong = _strings(*c_persona)
    flag("persona", wrong)
    if not present.all():
        persona[~present] = DEFAULT_PERSONA
    session, present, wrong = _strings(*c_session, allow_numbers=True)
    flag("session", wrong)
    if not present.all():
        session[~present] = ""

    cols = {
        "ts": ts,
        "method": method,
        "endpoint": endpoint,
        "status": np.where(ok, status, 0).astype(np.int32),
        "latency_ms": latency,
        "persona": persona,
        "session": session,
    }
    return cols, bad


# --------------------------------------------------------------------------------------------
# fast path: Arrow's multi-threaded JSON parser on a whole batch

_ARROW_TS_TYPES = ("float64", "string")  # epoch numbers, ISO 8601 strings


def _arrow_buffer(lines: list[bytes]) -> bytes | None:
    """The batch as one buffer for Arrow, or None when Arrow could read it differently from
    the line-by-line orjson path (which then handles the batch).

    Arrow is trusted only when every line is exactly one JSON object (``{`` … ``}``, no blank
    lines) that :func:`loads_lenient` decodes too (nesting beyond 1024 levels is refused), the
    bytes are valid UTF-8 (Arrow does not check) and there is no ``NaN`` or
    ``Infinity`` (Arrow accepts them, JSON does not). Type mismatches (a string status, a
    numeric path, a duplicated key...) make Arrow raise, see :func:`_arrow_table`.
    """
    buf = b"\n".join(lines)
    if not buf.isascii():
        try:
            buf.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if max(map(len, lines)) > _DEEP_BYTES:  # only a long line can nest 1024 levels deep
        for line in lines:
            if len(line) > _DEEP_BYTES:
                try:
                    loads_lenient(line)
                except ValueError:
                    return None  # orjson rejects it: so must the batch's other path
    if (buf[:1] != b"{" or not lines[-1].rstrip(b"\r").endswith(b"}")
            or buf.count(b"}\n{") + buf.count(b"}\r\n{") != len(lines) - 1
            or b"NaN" in buf or b"Infinity" in buf):
        return None
    return buf


def _arrow_table(buf: bytes, n: int, persona_field: str, ts_type: str) -> pa.Table | None:
    """``buf`` parsed by Arrow (multi-threaded) into our fields with ``ts`` as ``ts_type``,
    or None when a field has another JSON type in some line or the row count is not ``n``."""
    strings = pa.string()
    schema = pa.schema([("ts", getattr(pa, ts_type)()), ("method", strings), ("path", strings),
                        ("endpoint", strings), ("status", pa.float64()),
                        ("latency_ms", pa.float64()), (persona_field, strings),
                        ("session", strings)])
    try:
        table = pj.read_json(
            pa.BufferReader(buf),
            read_options=pj.ReadOptions(block_size=1 << 20),
            parse_options=pj.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table.combine_chunks() if table.num_rows == n else None


def _arrow_strings(column, absent: str, transform=None) -> tuple[np.ndarray, np.ndarray]:
    """(object values, present mask) of an Arrow string column; null and "" → ``absent``.

    Each distinct value becomes one Python string (``transform`` applied once per value).
    """
    enc = pc.dictionary_encode(column.chunk(0) if column.num_chunks else column)
    words = enc.dictionary.to_numpy(zero_copy_only=False).astype(object)
    if transform is not None:
        words = np.array([transform(w) for w in words.tolist()], dtype=object)
    words = np.append(words, absent)
    codes = enc.indices.fill_null(len(words) - 1).to_numpy()
    present_word = np.append(words[:-1] != "", False)
    words[~present_word] = absent
    return words[codes], present_word[codes]


def _arrow_columns(table, persona_field: str, ts_type: str):
    """Canonical columns and first-bad-field codes (as :func:`_columns`) of an Arrow batch."""
    n = table.num_rows
    if ts_type == "string":
        ts = iso_to_epoch(table.column("ts").to_numpy(zero_copy_only=False))
    else:
        ts = epoch_seconds(table.column("ts").to_numpy(zero_copy_only=False))
    method, _ = _arrow_strings(table.column("method"), "GET", str.upper)
    endpoint, has_ep = _arrow_strings(table.column("endpoint"), "")
    path_col = table.column("path")
    has_path = pc.fill_null(pc.greater(pc.binary_length(path_col), 0), False).to_numpy(
        zero_copy_only=False)
    need = ~has_ep & has_path
    if need.any():
        # one Python string per distinct endpoint, not per event
        templated = pc.dictionary_encode(template_paths_arrow(path_col.filter(pa.array(need))))
        words = templated.dictionary.to_numpy(zero_copy_only=False).astype(object)
        endpoint[need] = words[templated.indices.to_numpy()]
    status = table.column("status").to_numpy(zero_copy_only=False)
    latency = table.column("latency_ms").to_numpy(zero_copy_only=False)
    persona, _ = _arrow_strings(table.column(persona_field), DEFAULT_PERSONA)
    session, _ = _arrow_strings(table.column("session"), "")
    bad = np.zeros(n, dtype=np.int8)
    ok = _check_values(bad, ts, ~has_ep & ~has_path, status, latency)
    cols = {"ts": ts, "method": method, "endpoint": endpoint,
            "status": np.where(ok, status, 0).astype(np.int32), "latency_ms": latency,
            "persona": persona, "session": session}
    return cols, bad


def _read_batch(
    lines: list[bytes], first_line: int, source: str, persona_field: str,
    ts_types: list[str] | None = None,
) -> tuple[EventBatch, list[BadRecord]]:
    """Events and bad records of one batch of lines: Arrow when it can be trusted, else orjson.

    ``ts_types`` lists the ``ts`` types to try with Arrow, most likely first; the one that
    worked moves to the front (a file keeps its timestamp style). ``None`` skips Arrow.
    """
    table, buf = None, _arrow_buffer(lines) if ts_types else None
    if buf is not None:
        for ts_type in ts_types:
            table = _arrow_table(buf, len(lines), persona_field, ts_type)
            if table is not None:
                ts_types.remove(ts_type)
                ts_types.insert(0, ts_type)
                break
    if table is not None:
        cols, bad_codes = _arrow_columns(table, persona_field, ts_types[0])
        kept, json_bad = np.arange(len(lines)), {}
    else:
        objs, kept, json_bad = _parse_lines(lines)
        cols, bad_codes = _columns(objs, persona_field)
    fine = bad_codes == 0
    if not fine.all():
        cols = {k: v[fine] for k, v in cols.items()}
    batch = EventBatch(**cols, line=kept[fine] + first_line, source=source)
    bad: list[tuple[int, str, str]] = [
        (i, "json", _explain_json(lines[i], err, None if err else loads_lenient(lines[i])))
        for i, err in json_bad.items()
    ]
    for j in np.flatnonzero(~fine):
        field = _FIELDS[bad_codes[j]]
        obj = objs[j] if table is None else loads_lenient(lines[kept[j]])
        reason = _explain(field, obj, persona_field)
        bad.append((int(kept[j]), persona_field if field == "persona" else field, reason))
    bad.sort()
    return batch, [BadRecord(source, i + first_line, f, r) for i, f, r in bad]


def records_batch(records: list, first_line: int, source: str, *,
                  persona_field: str = "persona") -> tuple[EventBatch, list[BadRecord]]:
    """Events and bad records of in-memory records (notebooks: dicts, DataFrame rows), checked
    exactly as JSONL lines are; ``line`` numbers the records from ``first_line``. Fields beyond
    the canonical ones (``client``, ``user``, ``user_agent``, …) become ``extra`` columns, so
    sessions and personas are cut from them as for the readers."""
    mapping = np.fromiter((isinstance(r, dict) for r in records), dtype=bool,
                          count=len(records))
    kept = np.flatnonzero(mapping)
    objs = [records[i] for i in kept]
    cols, bad_codes = _columns(objs, persona_field)
    fine = bad_codes == 0
    known = {"ts", "method", "path", "endpoint", "status", "latency_ms", persona_field,
             "session"}
    other = list(dict.fromkeys(k for o in objs for k in o if k not in known))
    extra = {k: np.array([o.get(k) for o in objs], dtype=object)[fine] for k in other}
    batch = EventBatch(**{k: v[fine] for k, v in cols.items()}, line=kept[fine] + first_line,
                       source=source, extra=extra)
    bad = [(int(i), "record", f"expected a mapping, got {_type_name(records[i])}")
           for i in np.flatnonzero(~mapping)]
    for j in np.flatnonzero(~fine):
        field = _FIELDS[bad_codes[j]]
        bad.append((int(kept[j]), persona_field if field == "persona" else field,
                    _explain(field, objs[j], persona_field)))
    bad.sort()
    return batch, [BadRecord(source, i + first_line, f, r) for i, f, r in bad]


def read_jsonl(
    path: str | PathLike[str],
    *,
    batch_size: int = 65536,
    strict: bool = False,
    report: BadRecordReport | None = None,
    persona_field: str = "persona",
    byte_range: tuple[int, int] | None = None,
    first_line: int = 1,
) -> Iterator[EventBatch]:
    """Stream canonical JSONL events as :class:`EventBatch` es.

    Parameters
    ----------
    path : str or path-like
        File to read; gzip is detected and decompressed; ``-`` reads stdin.
    batch_size : int
        Physical lines per batch (a batch holds at most this many events).
    strict : bool
        Raise :class:`~driftbayes.events.BadRecordError` at the first bad line (its batch is not
        yielded) instead of skipping it.
    report : BadRecordReport, optional
        Collects skipped lines. Without one, a warning summarises them at the end.
    persona_field : str
        Name of the field that holds the persona.
    byte_range : (int, int), optional
        Read only bytes ``start:end`` of an uncompressed file, both at line starts (a partition
        of a file split for a distributed run, :mod:`driftbayes.io.partitions`) ...
    first_line : int
        ... whose first line is this line of the file.

    Yields
    ------
    EventBatch
        Good events in file order; ``line`` is the 1-based physical line, ``source`` the path as
        given (``<stdin>`` for ``-``). Empty batches are not yielded.
    """
    check_input(path, batch_size)
    return _iter_jsonl(path, batch_size, strict, report, persona_field, byte_range, first_line)


def check_input(path: str | PathLike[str], batch_size: int) -> None:
    """Fail early (before iteration starts) on a missing file or a bad batch size."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if str(path) != "-" and not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")


def _iter_jsonl(
    path: str | PathLike[str],
    batch_size: int,
    strict: bool,
    report: BadRecordReport | None,
    persona_field: str,
    byte_range: tuple[int, int] | None = None,
    first_line: int = 1,
) -> Iterator[EventBatch]:
    with reading(path, report) as scope:
        source = scope.source
        ts_types = list(_ARROW_TS_TYPES)
        with open_input(path, byte_range) as f:
            for first, lines in _line_batches(f, batch_size, first_line):
                if first == 1 and lines and lines[0].startswith(b"\xef\xbb\xbf"):
                    lines[0] = lines[0][3:]  # UTF-8 byte-order mark
                batch, bad = _read_batch(lines, first, source, persona_field, ts_types)
                batch = scope.accept(batch, bad, strict=strict)
                if len(batch):
                    yield batch
