"""The notebook API: ``import driftbayes as db``.

>>> import driftbayes as db
>>> learner = db.learn([{"ts": 60.0 * i, "path": "/api/users/7", "status": 200,
...                      "latency_ms": 80.0} for i in range(30)])
>>> learner.endpoints_
['GET /api/users/{id}']

Every source gets sessions, personas and redaction exactly as ``driftbayes learn`` gives them
(one :class:`~driftbayes.io.enrich.Enricher` over all of it, continuing the learner's open
sessions), and every record is screened by the config's bad-record policy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from driftbayes.config import Config, load_config
from driftbayes.events import BadRecordReport, EventBatch
from driftbayes.learner import DriftLearner

#: Records per batch when a source is an iterable of dicts.
BATCH_RECORDS = 65_536
#: How bad-record messages name in-memory records (``<records>:N``: the N-th record).
RECORDS = "<records>"


def as_config(config: Config | str | os.PathLike | Mapping | None) -> Config:
    """A :class:`Config` from a Config, a YAML path, a ``drift_learning`` mapping or None."""
    if isinstance(config, Config):
        return config
    if config is None or isinstance(config, str | os.PathLike):
        return load_config(config)
    return Config.from_dict(dict(config), source="<dict>")


def learn(source, *, config: Config | str | os.PathLike | Mapping | None = None,
          learner: DriftLearner | None = None, track_history: bool = False,
          fmt: str | None = None, strict: bool = False, openapi=None,
          report: BadRecordReport | None = None, client=None, batch_size: int = 65536,
          partition_bytes: int | None = None) -> DriftLearner:
    """Learn from ``source`` and return the learner.

    Parameters
    ----------
    source
        A path, a named recording (``"nasa"``), a list of them, an iterable of event dicts
        (see :meth:`EventBatch.from_records`), a pandas DataFrame (one row per event) or an
        :class:`EventBatch`.
    config
        A :class:`Config`, a YAML file or a ``drift_learning`` mapping (defaults when omitted);
        ignored when ``learner`` is given.
    learner
        Continue this learner (its config, clock and open sessions) instead of a new one.
    track_history
        Keep per-window estimates for drift plots (a new learner only).
    fmt, strict, openapi, report, batch_size
        As for :func:`driftbayes.io.recordings.read_events`.
    client : dask.distributed.Client, optional
        Learn paths and named recordings on this Dask cluster
        (:func:`driftbayes.distributed.learn_distributed`, ``pip install
        "driftbayes[distributed]"``): the same learner as without it.
    partition_bytes : int, optional
        With ``client``: line files larger than this are read in ranges of about this size.
    """
    from driftbayes.events import Screen, screening
    from driftbayes.io.enrich import Enricher
    from driftbayes.templates import OpenApiTemplates

    if learner is None:
        learner = DriftLearner(as_config(config), track_history=track_history)
    report = report if report is not None else BadRecordReport()
    if client is not None:
        from driftbayes.distributed import PARTITION_BYTES, learn_distributed

        if not _is_paths(source):
            raise TypeError("learn(client=...) reads paths or named recordings; learn "
                            f"{type(source).__name__} without a client")
        if openapi is not None and not isinstance(openapi, OpenApiTemplates):
            openapi = OpenApiTemplates.from_file(openapi)
        learn_distributed(learner, source, client, fmt=fmt, strict=strict, report=report,
                          openapi=openapi, batch_size=batch_size,
                          partition_bytes=partition_bytes or PARTITION_BYTES)
        return learner
    enricher = Enricher(learner.config, openapi=openapi).resume_from(learner)
    with screening(Screen(learner.config.limits, clock=learner.t_last_)):
        for batch in _batches(source, enricher, fmt=fmt, strict=strict, report=report,
                              batch_size=batch_size):
            learner.learn_many(batch)
    return learner


def _is_paths(source) -> bool:
    return isinstance(source, str | os.PathLike) or (
        isinstance(source, list | tuple) and bool(source)
        and all(isinstance(s, str | os.PathLike) for s in source))


def _batches(source, enricher, *, fmt, strict, report,
             batch_size: int = 65536) -> Iterator[EventBatch]:
    from driftbayes.io.recordings import read_events

    if isinstance(source, str | os.PathLike):
        source = [source]
    if isinstance(source, EventBatch):
        yield from enricher.stream(_screened([source], source.source, strict, report))
    elif _is_frame(source):
        yield from _batches(_frame_records(source), enricher, fmt=fmt, strict=strict,
                            report=report)
    elif isinstance(source, Mapping):
        yield from _batches([source], enricher, fmt=fmt, strict=strict, report=report)
    elif _is_paths(source):
        for path in source:
            yield from read_events(path, fmt=fmt, strict=strict, report=report,
                                   enricher=enricher, batch_size=batch_size)
    elif isinstance(source, Iterable):
        yield from enricher.stream(_record_batches(source, strict, report))
    else:
        raise TypeError(f"cannot learn from {type(source).__name__}: give a path, a named "
                        "recording, event dicts, a pandas DataFrame or an EventBatch")


def _screened(batches: Iterable[EventBatch], source: str, strict: bool,
              report: BadRecordReport | None) -> Iterator[EventBatch]:
    """Batches through the active screen (clock, limits), bad events reported or raised."""
    from driftbayes.events import reading

    with reading(source, report) as scope:
        for batch in batches:
            batch = scope.accept(batch, [], strict=strict)
            if len(batch):
                yield batch


def _record_batches(records: Iterable, strict: bool, report: BadRecordReport | None
                    ) -> Iterator[EventBatch]:
    """In-memory records checked as JSONL lines are (``<records>:N`` names record N)."""
    from driftbayes.events import reading
    from driftbayes.io.jsonl import records_batch

    with reading(RECORDS, report) as scope:
        chunk: list = []
        first = 1
        for rec in records:
            chunk.append(_plain(rec))
            if len(chunk) >= BATCH_RECORDS:
                batch = scope.accept(*records_batch(chunk, first, RECORDS), strict=strict)
                if len(batch):
                    yield batch
                first += len(chunk)
                chunk = []
        if chunk:
            batch = scope.accept(*records_batch(chunk, first, RECORDS), strict=strict)
            if len(batch):
                yield batch


def _plain(rec):
    """A record with NumPy scalars as Python numbers and datetimes as ISO 8601 text (what
    the JSONL checks understand); anything else is left for them to judge."""
    if not isinstance(rec, Mapping):
        return rec
    out = {}
    for k, v in rec.items():
        if hasattr(v, "isoformat") and not isinstance(v, str):
            v = v.isoformat()
            v = v if ("+" in v[10:] or v.endswith("Z")) else v + "Z"  # naive: UTC
        elif hasattr(v, "item") and getattr(v, "ndim", None) == 0:
            v = v.item()
        out[k] = v
    return out


def _frame_records(frame) -> list[dict]:
    """DataFrame rows as records; a missing value (NaN, None, NaT) is an absent field."""
    import pandas as pd

    return [{k: v for k, v in row.items() if not (v is None or v is pd.NaT or
                                                 (isinstance(v, float) and v != v))}
            for row in frame.to_dict("records")]


def _is_frame(x) -> bool:
    return type(x).__name__ == "DataFrame" and hasattr(x, "to_dict")


def save(learner: DriftLearner, path: str | os.PathLike) -> Path:
    """Save a learner's state (NetCDF, atomic, locked; see :func:`driftbayes.state.save_state`)."""
    from driftbayes.state import save_state

    return save_state(learner, path)


def load(path: str | os.PathLike, config: Config | str | os.PathLike | None = None
         ) -> DriftLearner:
    """Load a saved state (``config`` overrides the stored knobs)."""
    from driftbayes.state import load_state

    return load_state(path, None if config is None else as_config(config))
