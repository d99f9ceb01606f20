"""The canonical event batch every reader yields and every learner consumes."""

from __future__ import annotations

import datetime as _dt
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

DEFAULT_PERSONA = "default"

#: Column name → numpy dtype of an :class:`EventBatch`.
COLUMNS = {
    "ts": np.float64,  # event time, epoch seconds
    "method": object,  # upper-case HTTP method
    "endpoint": object,  # endpoint template path, e.g. /api/users/{id}
    "status": np.int32,  # HTTP status; 0 = not recorded (status model untouched)
    "latency_ms": np.float64,  # NaN = not recorded (latency models untouched)
    "persona": object,  # persona name; "default" when the event has none
    "session": object,  # session id; "" when the event has none
    "line": np.int64,  # 1-based line (or record) number in ``source``
}


@dataclass
class EventBatch:
    """A columnar batch of canonical events, all arrays of the same length.

    Parameters
    ----------
    ts, method, endpoint, status, latency_ms, persona, session, line
        One numpy array per column, dtypes as in :data:`COLUMNS`.
    source : str
        File (or stream) the batch came from, for error messages.
    """

    ts: np.ndarray
    method: np.ndarray
    endpoint: np.ndarray
    status: np.ndarray
    latency_ms: np.ndarray
    persona: np.ndarray
    session: np.ndarray
    line: np.ndarray
    source: str = "<memory>"
    #: Optional per-event request attributes readers know, as object arrays keyed by name:
    #: ``client`` (IP, IP + user agent, user or trace id — what sessions are cut from),
    #: ``user``, ``user_agent``, ``query`` (redacted), and ``header:<lower-case name>``
    #: (redacted) for request headers. Persona rules and sessionisation read them.
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, dtype in COLUMNS.items():
            setattr(self, name, np.asarray(getattr(self, name), dtype=dtype))
        self.extra = {k: np.asarray(v, dtype=object) for k, v in self.extra.items()}
        sizes = {len(getattr(self, name)) for name in COLUMNS}
        sizes |= {len(v) for v in self.extra.values()}
        if len(sizes) > 1:
            raise ValueError(f"EventBatch columns differ in length: {sizes}")

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> EventBatch:
        """Rows selected by an integer or boolean index, in that order."""
        return EventBatch(**{n: getattr(self, n)[index] for n in COLUMNS}, source=self.source,
                          extra={k: v[index] for k, v in self.extra.items()})

    @classmethod
    def from_records(cls, records: list[dict], source: str = "<memory>") -> EventBatch:
        """Build a batch from already-valid canonical dicts (tests and notebooks).

        ``endpoint`` defaults to the templated ``path``; missing optional fields get their
        defaults; any other field (``client``, ``user``, ``user_agent``, …) becomes an
        ``extra`` column, so sessions are cut from it as for the readers. Use the readers in
        :mod:`driftbayes.io` for untrusted input.
        """
        from driftbayes.templates import template_path

        cols: dict[str, list] = {n: [] for n in COLUMNS}
        known = set(COLUMNS) | {"path"}
        other = list(dict.fromkeys(k for r in records for k in r if k not in known))
        extra = {k: np.array([r.get(k) for r in records], dtype=object) for k in other}
        for i, r in enumerate(records, start=1):
            cols["ts"].append(float(r["ts"]))
            cols["method"].append(str(r.get("method", "GET")).upper())
            cols["endpoint"].append(r.get("endpoint") or template_path(r["path"]))
            cols["status"].append(int(r.get("status") or 0))
            lat = r.get("latency_ms")
            cols["latency_ms"].append(np.nan if lat is None else float(lat))
            cols["persona"].append(r.get("persona") or DEFAULT_PERSONA)
            cols["session"].append(r.get("session") or "")
            cols["line"].append(i)
        return cls(**cols, source=source, extra=extra)

    @classmethod
    def empty(cls, source: str = "<memory>") -> EventBatch:
        return cls(**{n: np.empty(0, dtype=d) for n, d in COLUMNS.items()}, source=source)

    @classmethod
    def concat(cls, batches: list[EventBatch]) -> EventBatch:
        if not batches:
            return cls.empty()
        keys = set().union(*(b.extra for b in batches))
        extra = {k: np.concatenate([b.extra.get(k, np.full(len(b), None, dtype=object))
                                    for b in batches]) for k in keys}
        return cls(
            **{n: np.concatenate([getattr(b, n) for b in batches]) for n in COLUMNS},
            source=batches[0].source, extra=extra,
        )


def show_value(value: object, limit: int = 60) -> str:
    """A value as quoted in a bad-record reason: ``repr`` of text, JSON of anything else,
    cut to ``limit`` characters (a gigantic field must not make a gigantic message)."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            import orjson

            text = orjson.dumps(value).decode()
        except TypeError:
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class BadRecord:
    """Where and why one input record was rejected."""

    source: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: field '{self.field}': {self.reason}"


class BadRecordError(ValueError):
    """Raised in strict mode at the first bad record."""

    def __init__(self, bad: BadRecord):
        super().__init__(str(bad))
        self.bad = bad


@dataclass
class BadRecordReport:
    """Counts of skipped records, keeping the first few locations for the end-of-run report."""

    keep: int = 5
    count: int = 0
    first: list[BadRecord] = field(default_factory=list)
    by_field: dict[str, int] = field(default_factory=dict)

    def add(self, bad: BadRecord) -> None:
        self.count += 1
        self.by_field[bad.field] = self.by_field.get(bad.field, 0) + 1
        if len(self.first) < self.keep:
            self.first.append(bad)

    def merge(self, other: BadRecordReport) -> None:
        """Add another report's counts and first records, as if its records came next."""
        self.count += other.count
        for name, n in other.by_field.items():
            self.by_field[name] = self.by_field.get(name, 0) + n
        self.first.extend(other.first[: max(self.keep - len(self.first), 0)])

    def summary(self) -> str:
        if not self.count:
            return "no bad records"
        fields = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_field.items()))
        lines = [f"skipped {self.count} bad record(s) ({fields}); first:"]
        lines += [f"  {b}" for b in self.first]
        return "\n".join(lines)


def handle_bad_records(
    bad: list[BadRecord], *, strict: bool, report: BadRecordReport | None
) -> None:
    """Raise :class:`BadRecordError` at the first of ``bad`` (``strict``), else report them all.

    ``bad`` must be in input order; ``report=None`` in lenient mode drops them silently.
    """
    if not bad:
        return
    if strict:
        raise BadRecordError(bad[0])
    if report is not None:
        for b in bad:
            report.add(b)


def source_name(path) -> str:
    """How a reader names its input in bad records: the path as given, ``<stdin>`` for ``-``."""
    return "<stdin>" if str(path) == "-" else str(path)


# --------------------------------------------------------------------------------------------
# the shared bad-record screen (docs/input-limits.md)

_NAME_CTRL = re.compile(r"[\x00-\x1f\x7f]")  # no control character in names
_TEXT_CTRL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # header values may hold a tab
_HEADER_LIKE = {"user_agent", "client", "user"}  # extra columns checked as headers
_NEIGHBOURS = 8  # records each side a timestamp's jump is checked against


def _year_start(year: int) -> float:
    return _dt.datetime(year, 1, 1, tzinfo=_dt.UTC).timestamp()


def _show_ts(ts: float) -> str:
    try:
        return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6g} s"


def _show_span(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _texts(values: np.ndarray) -> tuple[np.ndarray | None, list[str], str]:
    """(positions or None for all, values, values joined) of the ``str`` entries of an object
    array."""
    lst = values.tolist()
    try:
        return None, lst, "".join(lst)  # C-speed: succeeds only when every entry is a str
    except TypeError:
        idx = np.flatnonzero([type(v) is str for v in lst])
        lst = [lst[i] for i in idx]
        return idx, lst, "".join(lst)


class Screen:
    """The bad-record checks every reader applies (docs/input-limits.md), vectorised per batch.

    One screen follows one stream: it keeps the stream's clock (the latest accepted event time)
    across batches, and across the files of one ``learn`` run.

    Parameters
    ----------
    limits : InputLimits, optional
        The ``limits`` config section (default: its defaults).
    clock : float
        The stream's clock to start from, epoch seconds: the learner's ``t_last_`` when learning
        into an existing state; NaN (a fresh stream) starts from the median of the first batch.
    track_clock : bool
        Check timestamps against the stream's clock (``max_clock_skew``). ``learn`` does; a
        reader used on its own (no learner, so no clock to protect) checks only the limits
        that hold for one record.
    defer_clock : bool
        Check only the limits that hold for one record, and keep each batch's timestamps
        (NaN where a record is already bad) in :attr:`deferred`, one array per batch with a
        good record, for a :meth:`clock_check` in stream order elsewhere: how a distributed
        ``learn`` reads partitions in parallel and still screens one stream clock.
    """

    def __init__(self, limits=None, clock: float = math.nan, *, track_clock: bool = True,
                 defer_clock: bool = False):
        if limits is None:
            from driftbayes.config import InputLimits

            limits = InputLimits()
        self.limits = limits
        self.clock = float(clock)
        self.track_clock = track_clock
        self.lo, self.hi = _year_start(limits.min_year), _year_start(limits.max_year)
        self._tail = np.full(_NEIGHBOURS, np.nan)  # last accepted timestamps, for neighbours
        #: Timestamps kept for a deferred clock check (``defer_clock``), else None.
        self.deferred: list[np.ndarray] | None = [] if defer_clock else None

    def check(self, batch: EventBatch) -> tuple[EventBatch, list[BadRecord]]:
        """The batch without its bad events, and those events as :class:`BadRecord` s."""
        n = len(batch)
        if n == 0:
            return batch, []
        lim = self.limits
        field_of = np.full(n, None, dtype=object)  # first failing field per row
        reasons: dict[int, str] = {}

        def flag(mask: np.ndarray | None, name: str, why) -> None:
            if mask is None or not mask.any():
                return
            for i in np.flatnonzero(mask & (field_of == None)).tolist():  # noqa: E711
                field_of[i] = name
                reasons[i] = why(i)

        ts = batch.ts
        with np.errstate(invalid="ignore"):
            out = ~((ts >= self.lo) & (ts < self.hi))
        flag(out, "ts", lambda i: f"{_show_ts(ts[i])} is outside the plausible range "
             f"{lim.min_year}..{lim.max_year - 1} (limits.min_year / max_year)")
        self._check_texts(batch, flag)
        lat = batch.latency_ms
        with np.errstate(invalid="ignore"):
            flag(np.isinf(lat), "latency_ms", lambda i: f"not finite: {lat[i]}")
            flag(lat < 0, "latency_ms", lambda i: f"negative: {lat[i]:g}")
            flag(lat > lim.max_latency_ms, "latency_ms",
                 lambda i: f"{lat[i]:g} ms is over limits.max_latency_ms "
                           f"({lim.max_latency_ms:g})")
        if self.deferred is not None:
            fine = field_of == None  # noqa: E711
            if fine.any():
                self.deferred.append(np.where(fine, ts, np.nan))
        elif self.track_clock:
            self._check_clock(ts, field_of == None, flag)  # noqa: E711
        if not reasons:
            return batch, []
        good = field_of == None  # noqa: E711
        bad = [BadRecord(batch.source, int(batch.line[i]), field_of[i], reasons[i])
               for i in sorted(reasons)]
        return batch.take(good), bad

    def _check_texts(self, batch: EventBatch, flag) -> None:
        lim = self.limits
        columns = [("method", batch.method, lim.max_name_chars, "max_name_chars", _NAME_CTRL),
                   ("path", batch.endpoint, lim.max_path_chars, "max_path_chars", _NAME_CTRL),
                   ("persona", batch.persona, lim.max_name_chars, "max_name_chars", _NAME_CTRL),
                   ("session", batch.session, lim.max_name_chars, "max_name_chars", _NAME_CTRL)]
        columns += [(k, v, lim.max_header_chars, "max_header_chars", _TEXT_CTRL)
                    for k, v in sorted(batch.extra.items()) if k in _HEADER_LIKE
                    or k.startswith("header:")]  # bodies and query strings are not names
        n = len(batch)
        for name, values, limit, knob, ctrl in columns:
            idx, texts, joined = _texts(values)
            if not texts:
                continue
            if idx is None:
                idx = np.arange(n)
            if max(map(len, texts)) > limit:
                lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
                mask = np.zeros(n, dtype=bool)
                mask[idx[lens > limit]] = True
                flag(mask, name, lambda i, v=values, lm=limit, kb=knob:
                     f"{len(v[i]):,} characters, over limits.{kb} ({lm:,})")
            if not joined.isprintable() and ctrl.search(joined):
                hits = np.fromiter((ctrl.search(t) is not None for t in texts), dtype=bool,
                                   count=len(texts))
                mask = np.zeros(n, dtype=bool)
                mask[idx[hits]] = True

                def why(i, v=values, rx=ctrl):
                    m = rx.search(v[i])
                    return f"control character {m.group()!r} at position {m.start()}"

                flag(mask, name, why)

    def clock_check(self, ts: np.ndarray) -> dict[int, str]:
        """The clock check of one batch deferred by another screen (``defer_clock``): its
        timestamps, NaN for records already bad, give the positions the clock rejects with
        their reasons; the clock advances as :meth:`check` advances it."""
        ts = np.asarray(ts, dtype=float)
        reasons: dict[int, str] = {}

        def flag(mask, name, why):
            for i in np.flatnonzero(mask).tolist():
                reasons[i] = why(i)

        self._check_clock(ts, ~np.isnan(ts), flag)
        return reasons

    def _check_clock(self, ts: np.ndarray, fine: np.ndarray, flag) -> None:
        """Flag timestamps more than ``max_clock_skew`` from the stream's clock that fewer than
        ``clock_quorum`` of their 16 neighbours agree with; advance the clock."""
        lim = self.limits
        skew = lim.max_clock_skew
        t = np.where(fine, ts, np.nan)
        if np.isnan(t).all():
            return
        clock0 = self.clock
        if math.isnan(clock0):  # a fresh stream: a robust start, not its first record
            clock0 = float(np.nanmedian(t))
        accepted = fine.copy()
        support = None
        for _ in range(8):  # the clock only moves with accepted records: iterate to agreement
            before = np.fmax.accumulate(np.concatenate([[clock0], np.where(accepted, t, np.nan)]))
            with np.errstate(invalid="ignore"):
                far = np.abs(t - before[:-1]) > skew
            if not far.any():
                break
            if support is None:
                support = self._support(t, skew)
            new = fine & (~far | (support >= lim.clock_quorum))
            if np.array_equal(new, accepted):
                break
            accepted = new
        rejected = fine & ~accepted

        def why(i: int) -> str:
            gap = t[i] - before[i]
            side = "ahead of" if gap > 0 else "behind"
            return (f"{_show_ts(t[i])} is {_show_span(abs(gap))} {side} the stream's clock "
                    f"{_show_ts(before[i])} (limits.max_clock_skew {skew:g} s; fewer than "
                    f"{lim.clock_quorum} neighbouring records agree)")

        flag(rejected, "ts", why)
        kept = t[accepted]
        if kept.size:
            self.clock = float(np.fmax(clock0, kept.max()))
            self._tail = np.concatenate([self._tail, kept])[-_NEIGHBOURS:]
        elif math.isnan(self.clock):
            self.clock = clock0

    def _support(self, t: np.ndarray, skew: float) -> np.ndarray:
        """Per record, how many of its 8 + 8 neighbours lie within ``skew`` of it."""
        k = _NEIGHBOURS
        padded = np.concatenate([self._tail, t, np.full(k, np.nan)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1)
        with np.errstate(invalid="ignore"):
            near = np.abs(windows - t[:, None]) <= skew
        return near.sum(axis=1) - near[:, k]


_SCREEN: ContextVar[Screen | None] = ContextVar("driftbayes_screen", default=None)


@contextmanager
def screening(screen: Screen) -> Iterator[Screen]:
    """Make every reader opened inside (in this context) check its batches with ``screen``.

    ``learn`` opens one screen per run, starting from the learner's clock, so that the files of
    the run share one stream clock. Readers opened outside any ``screening`` use a fresh
    :class:`Screen` per file that checks each record's own limits but no clock.
    """
    token = _SCREEN.set(screen)
    try:
        yield screen
    finally:
        _SCREEN.reset(token)


class ReadScope:
    """A reader's bad-record scope (see :func:`reading`); unpacks as ``(source, report)``."""

    def __init__(self, source: str, report: BadRecordReport, screen: Screen):
        self.source, self.report, self.screen = source, report, screen

    def __iter__(self):
        return iter((self.source, self.report))

    def accept(self, batch: EventBatch, bad: list[BadRecord], *, strict: bool) -> EventBatch:
        """Screen ``batch`` (:class:`Screen`), then report or raise (``strict``) its bad records,
        the reader's ``bad`` included; returns the good events."""
        batch, more = self.screen.check(batch)
        if more:
            bad = sorted([*bad, *more], key=lambda b: b.line)
        handle_bad_records(bad, strict=strict, report=self.report)
        return batch


@contextmanager
def reading(path, report: BadRecordReport | None) -> Iterator[ReadScope]:
    """A reader's bad-record scope: a :class:`ReadScope` (unpacking as ``(source, report)``),
    the report being the caller's or a fresh one whose bad records are summarised in one
    warning when reading completes, the screen the current :func:`screening` one or a fresh
    ``Screen(track_clock=False)``."""
    source = source_name(path)
    owned = report is None
    report = BadRecordReport() if owned else report
    yield ReadScope(source, report, _SCREEN.get() or Screen(track_clock=False))
    warn_unreported(source, report, owned=owned)


def warn_unreported(source: str, report: BadRecordReport, *, owned: bool) -> None:
    """End-of-read warning for bad records when the caller passed no report to collect them."""
    if owned and report.count:
        warnings.warn(
            f"{source}: {report.summary()}\n(pass report=BadRecordReport() to collect them)",
            stacklevel=4,
        )
