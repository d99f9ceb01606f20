"""The canonical event batch every reader yields and every learner consumes."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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
        defaults. Use the readers in :mod:`driftbayes.io` for untrusted input.
        """
        from driftbayes.templates import template_path

        cols: dict[str, list] = {n: [] for n in COLUMNS}
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
        return cls(**cols, source=source)

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


@contextmanager
def reading(path, report: BadRecordReport | None) -> Iterator[tuple[str, BadRecordReport]]:
    """A reader's bad-record scope: ``(source name, report)``, the report being the caller's or
    a fresh one whose bad records are summarised in one warning when reading completes."""
    source = source_name(path)
    owned = report is None
    report = BadRecordReport() if owned else report
    yield source, report
    warn_unreported(source, report, owned=owned)


def warn_unreported(source: str, report: BadRecordReport, *, owned: bool) -> None:
    """End-of-read warning for bad records when the caller passed no report to collect them."""
    if owned and report.count:
        warnings.warn(
            f"{source}: {report.summary()}\n(pass report=BadRecordReport() to collect them)",
            stacklevel=4,
        )
