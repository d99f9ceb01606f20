"""CSV traffic with a column mapping onto the canonical event.

Every mapped cell is read as text and converted vectorised, with the same rules as the JSONL
reader: a row with a bad mapped value is rejected whole. Empty cells are missing values. Rows whose
mapped cells are all empty (blank lines) are skipped silently; lines with too many fields are bad
(field ``"csv"``). Line numbers are physical lines (header = line 1) as long as no quoted field
spans several lines.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from typing import NamedTuple

import numpy as np
import pandas as pd

from driftbayes.events import (
    DEFAULT_PERSONA,
    BadRecord,
    BadRecordReport,
    EventBatch,
    reading,
    show_value,
)
from driftbayes.io.jsonl import check_input, iso_to_epoch, map_unique, open_input
from driftbayes.templates import template_paths

__all__ = ["CsvMapping", "read_csv_mapped"]

_TS_SCALE = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}  # units per second
_LATENCY_UNITS = ("ms", "s", "us")
_SKIPPED = re.compile(r"Skipping line (\d+): (.*)")


@dataclass(frozen=True)
class CsvMapping:
    """Which CSV column holds each canonical field (``None`` = the file has none).

    Parameters
    ----------
    ts : str
        Timestamp column (required), in ``ts_unit``.
    method, path, endpoint, status, latency, persona, session : str or None
        Columns of the other fields. ``path`` or ``endpoint`` is required; a non-empty
        ``endpoint`` cell wins over templating ``path``. Without a ``status`` column every
        status is 0 (unknown); without ``latency`` every latency is NaN.
    ts_unit : {"s", "ms", "us", "ns", "iso"}
        Epoch unit of ``ts``, or ``"iso"`` for ISO 8601 text (naive = UTC).
    latency_unit : {"ms", "s", "us"}
    default_method : str
        Method when there is no method column or the cell is empty.
    """

    ts: str = "ts"
    method: str | None = "method"
    path: str | None = "path"
    endpoint: str | None = None
    status: str | None = "status"
    latency: str | None = "latency_ms"
    persona: str | None = None
    session: str | None = None
    ts_unit: str = "s"
    latency_unit: str = "ms"
    default_method: str = "GET"

    def __post_init__(self) -> None:
        if not self.ts:
            raise ValueError("CsvMapping needs a ts column")
        if self.path is None and self.endpoint is None:
            raise ValueError("CsvMapping needs a path or an endpoint column")
        if self.ts_unit not in (*_TS_SCALE, "iso"):
            raise ValueError(f"ts_unit must be one of s, ms, us, ns, iso; got {self.ts_unit!r}")
        if self.latency_unit not in _LATENCY_UNITS:
            raise ValueError(f"latency_unit must be one of ms, s, us; got {self.latency_unit!r}")

    @property
    def columns(self) -> dict[str, str]:
        """Canonical field → CSV column, for the mapped fields only."""
        fields = ("ts", "method", "path", "endpoint", "status", "latency", "persona", "session")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}


def _text(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(object array with None for empty cells, present mask)."""
    values = series.to_numpy(dtype=object, na_value=None, copy=True)  # writable
    present = series.notna().to_numpy()
    return values, present


def _numeric(series: pd.Series, per: float = 1) -> tuple[np.ndarray, np.ndarray]:
    """(float values / ``per``, present mask); unparseable text becomes NaN, still present.

    Integer columns are divided exactly (so nanosecond epochs keep their precision).
    """
    present = series.notna().to_numpy()
    values = pd.to_numeric(series, errors="coerce")
    if values.dtype.kind in "iu" and per != 1:
        whole, frac = np.divmod(values.to_numpy(), per)
        return whole + frac / per, present
    return values.to_numpy(dtype=np.float64, na_value=np.nan) / per, present


def _skipped_lines(caught: list[warnings.WarningMessage]) -> list[tuple[int, str]]:
    """(line, reason) of the lines pandas skipped; other warnings are re-issued, except the
    one about rows shorter than the names (every row is: the names end with ``_EXTRA``)."""
    out = []
    for w in caught:
        found = _SKIPPED.findall(str(w.message))
        if found:
            out += [(int(n), why.strip()) for n, why in found]
        elif not str(w.message).startswith("Length of header or names does not match"):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


_EXTRA = "\x00driftbayes-extra-field"  # one column past the header: set = a field too many


def _header_names(line: bytes) -> list[str]:
    """Column names of a CSV header line, deduplicated as pandas does (``a``, ``a.1``)."""
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    names, seen = [], {}
    for name in next(csv.reader([text]), []):
        k = seen.get(name, 0)
        seen[name] = k + 1
        names.append(name if k == 0 else f"{name}.{k}")
    return names


class CsvChunk(NamedTuple):
    """Rows of a CSV chunk, their physical line numbers, the bad lines reported with them, and
    whether this is the (empty) last chunk."""

    rows: pd.DataFrame
    lines: np.ndarray
    bad: list[BadRecord]
    final: bool = False


def csv_chunks(
    f, source: str, batch_size: int, *, dtype=str, nrows: int | None = None
) -> Iterator[CsvChunk]:
    """Stream a CSV with a header line as :class:`CsvChunk` s.

    Every row has exactly the header's columns as strings (NaN when empty or missing). A line
    with more fields than the header is not a row but a bad record (field ``"csv"``), wherever
    it is — pandas alone would silently drop the extra fields when it is the first data line.
    Each chunk reports the bad lines before its last row; the last chunk is empty, ``final``,
    with the rest.

    Parameters
    ----------
    f : binary file object
        Positioned at the header line.
    source : str
        Name for the bad records.
    batch_size : int
        Data lines per chunk (bad lines included).
    dtype, nrows
        As for :func:`pandas.read_csv`.
    """
    names = _header_names(f.readline())
    if not names:
        yield CsvChunk(pd.DataFrame(), np.empty(0, dtype=np.int64), [], True)
        return
    reader = pd.read_csv(
        f, header=None, names=[*names, _EXTRA], dtype=dtype, index_col=False,
        keep_default_na=False, na_values=[""], skip_blank_lines=False, on_bad_lines="warn",
        encoding="utf-8", encoding_errors="replace", chunksize=batch_size, nrows=nrows,
    )
    pending: list[tuple[int, str]] = []
    next_line = 2
    with reader:
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                chunk = next(reader, None)
            for n, why in _skipped_lines(caught):  # pandas counts the line after our header
                pending.append((n + 1, why.replace(f"Expected {len(names) + 1} fields",
                                                   f"Expected {len(names)} fields")
                                .replace(f"in line {n},", f"in line {n + 1},")))
            if chunk is None:
                yield CsvChunk(pd.DataFrame(columns=names, dtype=object),
                               np.empty(0, dtype=np.int64),
                               [BadRecord(source, n, "csv", why) for n, why in sorted(pending)],
                               True)
                return
            skip = np.array(sorted(n for n, _ in pending), dtype=np.int64)
            candidates = np.arange(next_line, next_line + len(chunk) + len(skip))
            lines = candidates[~np.isin(candidates, skip)][: len(chunk)]
            next_line = int(lines[-1]) + 1 if len(lines) else next_line
            extra = chunk[_EXTRA].notna().to_numpy()
            pending += [(int(n), f"Expected {len(names)} fields in line {n}, saw "
                                 f"{len(names) + 1}") for n in lines[extra]]
            bad = [BadRecord(source, n, "csv", why) for n, why in sorted(pending)
                   if n < next_line]
            pending = [(n, why) for n, why in pending if n >= next_line]
            keep = ~extra
            yield CsvChunk(chunk.loc[keep, names].reset_index(drop=True), lines[keep], bad)


def _convert(
    chunk: pd.DataFrame, mapping: CsvMapping
) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[int, str, str]]]:
    """Canonical columns, blank-row mask and ``(row, column, reason)`` of bad rows."""
    cols = mapping.columns
    n = len(chunk)
    blank = np.ones(n, dtype=bool)
    for c in set(cols.values()):
        blank &= chunk[c].isna().to_numpy()
    bad_cell: dict[int, tuple[str, str]] = {}

    def flag(field: str, mask: np.ndarray, reason) -> None:
        for i in np.flatnonzero(mask & ~blank):
            if int(i) not in bad_cell:
                value = chunk[cols[field]].iloc[i]
                bad_cell[int(i)] = (cols[field], reason(value))

    def text(field: str) -> tuple[np.ndarray, np.ndarray]:
        values, present = _text(chunk[cols[field]])
        if present.any():
            broken = np.zeros(n, dtype=bool)
            contains = chunk[cols[field]][present].str.contains("\ufffd", regex=False)
            broken[present] = contains.to_numpy(dtype=bool)
            flag(field, broken, lambda v: "not valid UTF-8")
        return values, present

    # ts
    if mapping.ts_unit == "iso":
        raw, present = _text(chunk[mapping.ts])
        ts = np.full(n, np.nan)
        ts[present] = iso_to_epoch(raw[present])
    else:
        ts, present = _numeric(chunk[mapping.ts], _TS_SCALE[mapping.ts_unit])
    flag(
        "ts",
        ~np.isfinite(ts),
        lambda v: ("missing" if pd.isna(v)
                   else f"not a valid {mapping.ts_unit} timestamp: {show_value(v)}"),
    )
    # method
    if mapping.method is not None:
        method, present = text("method")
        method[~present] = mapping.default_method
    else:
        method = np.full(n, mapping.default_method, dtype=object)
    # endpoint / path
    endpoint = np.full(n, None, dtype=object)
    has_ep = np.zeros(n, dtype=bool)
    if mapping.endpoint is not None:
        endpoint, has_ep = text("endpoint")
    need = ~has_ep
    if mapping.path is not None:
        path, has_path = text("path")
        flag("path", need & ~has_path, lambda v: "missing (and no endpoint)")
        need &= has_path
        if need.any():
            endpoint[need] = template_paths(path[need])
    else:
        flag("endpoint", need, lambda v: "missing")
    # status
    if mapping.status is not None:
        status, present = _numeric(chunk[mapping.status])
        with np.errstate(invalid="ignore"):
            ok = (status >= 100) & (status <= 599) & (status == np.floor(status))

        def why_status(v: object) -> str:
            if pd.isna(v):
                return "missing"
            return f"not an integer status in 100-599: {show_value(v)}"

        flag("status", ~ok, why_status)
        status = np.where(ok, status, 0)
    else:
        status = np.zeros(n)
    # latency
    if mapping.latency is not None:
        unit = mapping.latency_unit
        latency, present = _numeric(chunk[mapping.latency], 1000 if unit == "us" else 1)
        if unit == "s":
            latency = latency * 1e3
        with np.errstate(invalid="ignore"):
            lat_bad = present & (~np.isfinite(latency) | (latency < 0))
        flag("latency", lat_bad, lambda v: f"not a finite number ≥ 0: {show_value(v)}")
    else:
        latency = np.full(n, np.nan)
    # persona, session
    if mapping.persona is not None:
        persona, present = text("persona")
        persona[~present] = DEFAULT_PERSONA
    else:
        persona = np.full(n, DEFAULT_PERSONA, dtype=object)
    if mapping.session is not None:
        session, present = text("session")
        session[~present] = ""
    else:
        session = np.full(n, "", dtype=object)

    fine = ~blank
    if bad_cell:
        fine[list(bad_cell)] = False
    method[fine] = map_unique(method[fine], str.upper)
    out = {
        "ts": ts,
        "method": method,
        "endpoint": endpoint,
        "status": status.astype(np.int32),
        "latency_ms": latency,
        "persona": persona,
        "session": session,
    }
    bad = [(i, col, reason) for i, (col, reason) in bad_cell.items()]
    return out, fine, bad


def read_csv_mapped(
    path: str | PathLike[str],
    mapping: CsvMapping,
    *,
    batch_size: int = 65536,
    strict: bool = False,
    report: BadRecordReport | None = None,
) -> Iterator[EventBatch]:
    """Stream a CSV file as :class:`EventBatch` es through a :class:`CsvMapping`.

    Parameters
    ----------
    path : str or path-like
        CSV file with a header line; gzip is detected; ``-`` reads stdin.
    mapping : CsvMapping
    batch_size : int
        Data rows per batch.
    strict : bool
        Raise :class:`~driftbayes.events.BadRecordError` at the first bad row.
    report : BadRecordReport, optional
        Collects skipped rows (``field`` is the CSV column name, or ``"csv"`` for a line with too
        many fields). Without one, a warning summarises them at the end.

    Yields
    ------
    EventBatch
        ``line`` is the physical line number of each row (the header is line 1).
    """
    check_input(path, batch_size)
    return _iter_csv(path, mapping, batch_size, strict, report)


def _iter_csv(
    path: str | PathLike[str],
    mapping: CsvMapping,
    batch_size: int,
    strict: bool,
    report: BadRecordReport | None,
) -> Iterator[EventBatch]:
    with reading(path, report) as scope:
        source = scope.source
        wanted = sorted(set(mapping.columns.values()))
        with open_input(path) as f:
            for chunk, lines, skipped, _ in csv_chunks(f, source, batch_size):
                missing = [c for c in wanted if c not in chunk.columns]
                if missing:
                    raise ValueError(
                        f"{source}: mapped column(s) {missing} not in the header "
                        f"{list(chunk.columns)}"
                    )
                cols, fine, bad_rows = _convert(chunk, mapping)
                bad = [BadRecord(source, int(lines[i]), c, r) for i, c, r in bad_rows] + skipped
                bad.sort(key=lambda b: b.line)
                batch = scope.accept(EventBatch(**{k: v[fine] for k, v in cols.items()},
                                                line=lines[fine], source=source),
                                     bad, strict=strict)
                if len(batch):
                    yield batch
