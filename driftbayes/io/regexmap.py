"""Line-oriented logs read through a regex whose named groups map onto the canonical event.

A :class:`RegexMapping` names, for each canonical field, the regex group (or groups) that hold
it. Every line is searched with the compiled regex; the captured columns are converted
vectorised, with the rules of the other readers:

=============== ======== ====================================================================
field           required conversion
=============== ======== ====================================================================
``ts``          yes      by ``ts_format``: ``"iso"`` (ISO 8601, naive = UTC), ``"s"`` /
                         ``"ms"`` / ``"us"`` / ``"ns"`` epoch numbers, ``"clf"``
                         (``17/May/2015:10:05:03 +0000``) or a ``strftime`` format with ``%``
                         (naive = UTC)
``method``      no       upper-cased; absent → ``default_method``
``path``        yes      redacted (:func:`~driftbayes.redact.redact_url`), templated to
                         ``endpoint``; its query string goes to ``extra["query"]`` (redacted)
``status``      no       integer 100–599; absent → 0 (not recorded)
``latency``     no       number ≥ 0 in ``latency_unit``; absent → NaN (not recorded)
``user``        no       ``extra["user"]``
``client``      no       ``extra["client"]`` (what sessions are cut from)
``session``     no       ``session`` column; absent → ``""``
``persona``     no       ``persona`` column; absent → ``"default"``
=============== ======== ====================================================================

A field mapped to a tuple of groups is their values joined with a space (absent parts left
out). A group value that is empty or ``-`` is absent. ``extra`` maps more groups into
``EventBatch.extra`` (``referer`` values are URL-redacted, ``query`` values query-redacted).

Lines the regex does not match are bad (field ``"line"``) unless ``skip_unmatched``: then they
are not requests (other lines of a mixed application log) and are skipped silently, not
counted. A matched line with a bad value is always bad, its field named as above.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from os import PathLike

import numpy as np
import pandas as pd

from driftbayes.events import (
    DEFAULT_PERSONA,
    BadRecord,
    BadRecordReport,
    EventBatch,
    reading,
)
from driftbayes.io.accesslog import (
    _METHOD,
    _Flags,
    _map_present,
    _numbers,
    _present,
    _set,
    _show,
    assemble,
    clf_to_epoch,
    match_lines,
    no_gc,
    split_targets,
    text_batches,
)
from driftbayes.io.jsonl import check_input, iso_to_epoch, open_input
from driftbayes.redact import redact_query, redact_url
from driftbayes.templates import template_paths

__all__ = ["OPENSTACK_NOVA", "OPENSTACK_NOVA_COMPUTE", "RegexMapping", "read_regex_mapped"]

#: Canonical fields a :class:`RegexMapping` can fill.
FIELDS = ("ts", "method", "path", "status", "latency", "user", "client", "session", "persona")
_TS_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_LATENCY_SCALE = {"ms": 1.0, "s": 1e3, "us": 1e-3}


@dataclass(frozen=True)
class RegexMapping:
    """A regex with named groups and which canonical field each group fills.

    Parameters
    ----------
    pattern : str
        Regular expression, searched in each line (anchor it with ``^`` to match from the
        start). Named groups carry the values.
    fields : mapping of str to str or tuple of str
        Canonical field (one of :data:`FIELDS`) → group name, or a tuple of group names joined
        with a space. A canonical field that is not listed is taken from the group of the same
        name when the pattern has one.
    extra : mapping of str to str or tuple of str
        ``EventBatch.extra`` key → group(s), e.g. ``{"request_id": "req"}``.
    ts_format : str
        ``"iso"``, ``"s"``, ``"ms"``, ``"us"``, ``"ns"``, ``"clf"`` or a ``strftime`` format
        (contains ``%``); text without a zone is UTC.
    latency_unit : {"ms", "s", "us"}
    skip_unmatched : bool
        Lines that do not match are not requests: skip them silently (mixed logs).
    default_method : str
        Method when there is no method group or it is absent.

    Raises
    ------
    ValueError
        For an invalid pattern, an unknown field, a missing group, no ``ts`` or ``path``, or an
        unknown unit.
    """

    pattern: str
    fields: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    extra: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    ts_format: str = "iso"
    latency_unit: str = "ms"
    skip_unmatched: bool = False
    default_method: str = "GET"
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    sources: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    extra_sources: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            regex = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"RegexMapping pattern does not compile: {exc}") from None
        unknown = set(self.fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown canonical field(s) {sorted(unknown)}; use {FIELDS}")
        sources = {f: (f,) for f in FIELDS if f in regex.groupindex}
        for name, groups in self.fields.items():
            sources[name] = (groups,) if isinstance(groups, str) else tuple(groups)
        extra = {k: (g,) if isinstance(g, str) else tuple(g) for k, g in self.extra.items()}
        missing = {g for gs in (*sources.values(), *extra.values()) for g in gs} - set(
            regex.groupindex
        )
        if missing:
            raise ValueError(f"RegexMapping pattern has no group(s) {sorted(missing)}")
        for required in ("ts", "path"):
            if required not in sources:
                raise ValueError(f"RegexMapping needs a {required!r} group")
        if self.ts_format not in (*_TS_SCALE, "iso", "clf") and "%" not in self.ts_format:
            raise ValueError(
                "ts_format must be iso, s, ms, us, ns, clf or a strftime format; "
                f"got {self.ts_format!r}"
            )
        if self.latency_unit not in _LATENCY_SCALE:
            raise ValueError(f"latency_unit must be one of ms, s, us; got {self.latency_unit!r}")
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "extra_sources", extra)


_NOVA = (
    r"^(?:\S+ )?(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) \d+ [A-Z]+ "
    r"nova\.{loggers}\.wsgi\.server "
    r"\[(?:(?P<request_id>req-[0-9A-Fa-f-]+)(?: (?P<user>\S+) (?P<tenant>\S+))?[^\]]*|-)\] "
    r'(?P<ip>[^ "]+) "(?P<method>[A-Za-z]+) (?P<path>\S+) HTTP/\d(?:\.\d)?" '
    r"status: (?P<status>\d+) len: \d+ time: (?P<latency>\d+(?:\.\d+)?)"
)

#: OpenStack nova-api WSGI access lines (``loghub`` ``OpenStack_2k.log`` and plain
#: ``nova-api.log``): both the compute API (``nova.osapi_compute.wsgi.server``) and the metadata
#: API (``nova.metadata.wsgi.server``) servers; every other line is skipped. ``time:`` is the
#: server latency in seconds; ``user`` is the USER of ``[req-ID USER TENANT - - -]`` and
#: ``client`` is ``USER TENANT`` (metadata requests carry neither: client None); ``extra`` gets
#: ``request_id`` (one per request, so not a session), ``tenant`` and ``client_ip``. The
#: timestamp ``2017-05-16 00:00:00.008`` has no zone; it is read as **UTC** (nova logs in the
#: host's local time, which is UTC on typical cloud hosts and in the loghub sample).
OPENSTACK_NOVA = RegexMapping(
    pattern=_NOVA.replace("{loggers}", "(?:osapi_compute|metadata)"),
    fields={"client": ("user", "tenant")},
    extra={"request_id": "request_id", "tenant": "tenant", "client_ip": "ip"},
    ts_format="iso",
    latency_unit="s",
    skip_unmatched=True,
)

#: :data:`OPENSTACK_NOVA` restricted to the compute API (``nova.osapi_compute.wsgi.server``).
OPENSTACK_NOVA_COMPUTE = RegexMapping(
    pattern=_NOVA.replace("{loggers}", "osapi_compute"),
    fields={"client": ("user", "tenant")},
    extra={"request_id": "request_id", "tenant": "tenant", "client_ip": "ip"},
    ts_format="iso",
    latency_unit="s",
    skip_unmatched=True,
)


def _joined(groups: dict[str, np.ndarray], names: tuple[str, ...], n: int) -> np.ndarray:
    """Present values of ``names`` joined with a space per row; None where all are absent."""
    parts = [_present(groups[g]) for g in names]
    if len(parts) == 1:
        return parts[0].copy()  # callers fill defaults in place
    out = np.full(n, None, dtype=object)
    for part in parts:
        has = _set(part)
        both = has & _set(out)
        out[both] = out[both] + " " + part[both]
        only = has & ~both
        out[only] = part[only]
    return out


def _ts(raw: np.ndarray, ts_format: str) -> np.ndarray:
    present = _set(raw)
    out = np.full(len(raw), np.nan)
    if not present.any():
        return out
    if ts_format in _TS_SCALE:
        return _numbers(raw)[0] * _TS_SCALE[ts_format]
    values = raw[present]
    if ts_format == "clf":
        out[present] = clf_to_epoch(values)
    elif ts_format == "iso":
        out[present] = iso_to_epoch(values)
    else:
        dt = pd.to_datetime(pd.Series(values, dtype=object), format=ts_format, utc=True,
                            errors="coerce")
        out[present] = ((dt - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    return out


def _convert(
    groups: dict[str, np.ndarray], n: int, mapping: RegexMapping
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], _Flags]:
    flags = _Flags(n)
    src = mapping.sources

    def column(name: str) -> np.ndarray:
        return _joined(groups, src[name], n) if name in src else np.full(n, None, dtype=object)

    # ts
    raw_ts = column("ts")
    ts = _ts(raw_ts, mapping.ts_format)
    flags.flag("ts", ~np.isfinite(ts),
               lambda i: f"not a valid {mapping.ts_format} time: {_show(raw_ts[i])}")
    # method
    raw_method = column("method")
    method = _map_present(raw_method, lambda m: m.upper() if _METHOD.fullmatch(m) else None)
    absent = ~_set(raw_method)
    method[absent] = mapping.default_method.upper()
    flags.flag("method", ~_set(method), lambda i: f"not an HTTP method: {_show(raw_method[i])}")
    # path → endpoint + query
    raw_path = column("path")
    paths, query = split_targets(raw_path)
    has_path = _set(paths)
    flags.flag("path", ~has_path, lambda i: "missing")
    endpoint = np.full(n, None, dtype=object)
    if has_path.any():
        endpoint[has_path] = template_paths(paths[has_path])
    # status
    status = np.zeros(n, dtype=np.int32)
    if "status" in src:
        raw_status = column("status")
        values, present = _numbers(raw_status)
        with np.errstate(invalid="ignore"):
            ok = (values >= 100) & (values <= 599) & (values == np.floor(values))
        flags.flag("status", present & ~ok,
                   lambda i: f"not a status in 100-599: {_show(raw_status[i])}")
        status = np.where(ok, values, 0).astype(np.int32)
    # latency
    latency = np.full(n, np.nan)
    if "latency" in src:
        raw_latency = column("latency")
        values, present = _numbers(raw_latency)
        latency = values * _LATENCY_SCALE[mapping.latency_unit]
        bad = present & ~(np.isfinite(latency) & (latency >= 0))
        flags.flag("latency", bad,
                   lambda i: f"not a finite number >= 0: {_show(raw_latency[i])}")
    persona = column("persona")
    persona[~_set(persona)] = DEFAULT_PERSONA
    session = column("session")
    session[~_set(session)] = ""

    cols = {
        "ts": ts,
        "method": method,
        "endpoint": endpoint,
        "status": status,
        "latency_ms": latency,
        "persona": persona,
        "session": session,
    }
    extra = {"client": column("client"), "user": column("user"), "query": query}
    for key, names in mapping.extra_sources.items():
        values = _joined(groups, names, n)
        if key == "query":
            values = _map_present(values, redact_query)
        elif key == "referer":
            values = _map_present(values, redact_url)
        extra[key] = values
    return cols, extra, flags


def _read_batch(
    lines: list[str], first: int, mapping: RegexMapping, source: str
) -> tuple[EventBatch, list[BadRecord]]:
    groups, kept, missed = match_lines(mapping.regex, lines, search=True)
    bad = []
    if not mapping.skip_unmatched:
        bad = [
            BadRecord(source, first + int(i), "line",
                      f"does not match the mapping's pattern: {_show(lines[i])}")
            for i in missed
        ]
    cols, extra, flags = _convert(groups, len(kept), mapping)
    return assemble(cols, extra, flags, kept, first, source, bad), bad


def read_regex_mapped(
    path: str | PathLike[str],
    mapping: RegexMapping,
    *,
    batch_size: int = 65536,
    strict: bool = False,
    report: BadRecordReport | None = None,
    byte_range: tuple[int, int] | None = None,
    first_line: int = 1,
) -> Iterator[EventBatch]:
    """Stream a line-oriented log as :class:`EventBatch` es through a :class:`RegexMapping`.

    Parameters
    ----------
    path : str or path-like
        Log file; gzip is detected and decompressed; ``-`` reads stdin.
    mapping : RegexMapping
        For example :data:`OPENSTACK_NOVA`.
    batch_size : int
        Physical lines per batch (a batch holds at most this many events).
    strict : bool
        Raise :class:`~driftbayes.events.BadRecordError` at the first bad line (its batch is not
        yielded) instead of skipping it. Unmatched lines under ``skip_unmatched`` are not bad.
    report : BadRecordReport, optional
        Collects skipped bad lines. Without one, a warning summarises them at the end.
    byte_range, first_line
        Read only bytes ``start:end`` of an uncompressed file, starting at its line
        ``first_line`` (as :func:`~driftbayes.io.jsonl.read_jsonl`).

    Yields
    ------
    EventBatch
        Good events in file order; ``line`` is the 1-based physical line; ``extra`` has
        ``client``, ``user``, ``query`` and the mapping's extra keys. Empty batches are not
        yielded.
    """
    check_input(path, batch_size)
    return _iter_regex(path, mapping, batch_size, strict, report, byte_range, first_line)


def _iter_regex(
    path: str | PathLike[str],
    mapping: RegexMapping,
    batch_size: int,
    strict: bool,
    report: BadRecordReport | None,
    byte_range: tuple[int, int] | None = None,
    first_line: int = 1,
) -> Iterator[EventBatch]:
    with reading(path, report) as scope:
        source = scope.source
        with open_input(path, byte_range) as f:
            for first, lines in text_batches(f, batch_size, first_line):
                with no_gc():
                    batch, bad = _read_batch(lines, first, mapping, source)
                batch = scope.accept(batch, bad, strict=strict)
                if len(batch):
                    yield batch
