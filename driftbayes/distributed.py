"""Distributed ``learn`` on Dask: the single-process result, learned by many processes.

``driftbayes learn FILE... --workers N`` (a local cluster of processes), ``--scheduler
tcp://HOST:8786`` (a running cluster) and ``db.learn(paths, client=...)`` run
:func:`learn_distributed`. Its stages, each exact to what one process does:

1. **plan** (client): every input becomes :class:`~driftbayes.io.partitions.Partition` s:
   whole files, and byte ranges of large line files that start at batch boundaries (the
   workers count the lines of each range first, in parallel).
2. **read** (workers, per partition, :func:`read_partition`): parse, the bad-record checks of
   one record, and every enrichment step but cutting sessions (templates, personas, redaction,
   hashed session ids; :meth:`~driftbayes.io.enrich.Enricher.prepare`). The check against the
   stream's clock needs the stream before it: each partition hands back its timestamps.
3. **clock** (client, in stream order): :meth:`~driftbayes.events.Screen.clock_check` on those
   timestamps, batch after batch, as one process screens them; this also gives each partition
   the learning window the stream is in when it starts.
4. **route** (workers, per partition, :func:`route_partition`): drop the records the clock
   rejected, give every event its learning window (the running maximum over the stream, so a
   late event lands where one learner puts it), note the names in order of first appearance
   and the response bodies, and split the events by **session group**: the key sessions are
   cut from (``session_key``), else the session id.
5. **learn** (workers, per session group, :func:`learn_group`): cut sessions
   (:meth:`~driftbayes.io.enrich.Enricher.cut`, per original batch) and map events to
   per-(cell, window) sums (:meth:`~driftbayes.learner.DriftLearner.shard`). A session's
   events are all in one group and in stream order, so no transition or think time is lost or
   invented where files or partitions meet.
6. **reduce** (workers, per block of endpoints): each group's shard moves to the run's last
   window and splits into :class:`~driftbayes.blocks.BlockSums` in the run's whole vocabulary
   (:func:`split_group`; blocks of endpoints by a hash of their names, START's transition row in
   block 0); each block's pieces add up in a tree, so the merged sums of all cells never meet in
   one place.
7. **scan** (workers, per block, :func:`scan_block`): a copy of the learner keeping only the
   block's cells runs :meth:`~driftbayes.learner.DriftLearner.learn_sums` (decay, change tests,
   gates, applied layer) window by window over the block's sums, every name joining in the
   window of its first event in the whole stream. The scan is per endpoint: an endpoint's
   personas pool together and its transition rows are its own. The client joins the blocks'
   cells into the learner (:meth:`~driftbayes.learner.DriftLearner.join_blocks`).

Bad records are counted and reported in stream order, as one process reports them; in strict
mode the first one fails the run. A partition that fails fails the run naming its file and byte
range. Nothing touches the learner before every partition has been read and learned.
"""

from __future__ import annotations

import math
import operator
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from driftbayes.blocks import bucket
from driftbayes.config import Config
from driftbayes.events import BadRecord, BadRecordError, BadRecordReport, EventBatch, Screen
from driftbayes.learner import DriftLearner, response_bodies
from driftbayes.open_sessions import OpenSessions

__all__ = ["WORKER_CONFIG", "Driver", "GroupLearner", "PartitionError", "Stages", "block_masks",
           "clock_input",
           "learn_distributed", "learn_group", "local_cluster", "merge_groups", "plan",
           "read_partition", "route_partition", "route_piece", "route_summary", "scan_block",
           "split_group"]

#: Default partition size: line files larger than this are read in ranges of about this size.
PARTITION_BYTES = 64 << 20


class PartitionError(RuntimeError):
    """A partition could not be read or learned; the message names its file and byte range."""


@dataclass
class Stages:
    """Wall time (s) of each stage of a distributed run, and its counts."""

    plan: float = 0.0
    map: float = 0.0  # read + clock + route + learn, overlapped
    reduce: float = 0.0  # split into blocks of endpoints, then a tree per block
    scan: float = 0.0  # the blocks' scans on the workers, then their join on the client
    partitions: int = 0
    groups: int = 0
    blocks: int = 0
    events: int = 0
    scanned_on: list = field(default_factory=list)  # the worker of each block's scan
    seconds: dict = field(default_factory=dict)


#: Dask settings for driftbayes' workers. The nanny's default ``MALLOC_TRIM_THRESHOLD_``
#: (64 KiB) turns off glibc's adaptive mmap threshold, so every array over 128 KiB is mapped
#: and unmapped afresh: the scan's per-window arrays then cost page faults, and a worker ~1.6×
#: the CPU of one process. Workers keep glibc's defaults, as one process does.
WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextmanager
def local_cluster(workers: int, **options) -> Iterator:
    """A :class:`dask.distributed.Client` on a new local cluster of ``workers`` processes, one
    thread each (``driftbayes learn --workers N``); both are closed on exit."""
    import dask
    from dask.distributed import Client, LocalCluster

    options.setdefault("dashboard_address", None)
    with dask.config.set(WORKER_CONFIG), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, **options) as cluster, \
            Client(cluster) as client:
        yield client


# --------------------------------------------------------------------------------------------
# stage 2: read


@dataclass
class ReadPartition:
    """One partition read: its prepared batches (kept on the worker), their timestamps for the
    clock check, and its bad records."""

    part: object
    batches: list[EventBatch]
    ts: list[np.ndarray]
    bad: BadRecordReport


def read_partition(part, config: Config, openapi, batch_size: int, keep: int) -> ReadPartition:
    """Read one partition as :func:`~driftbayes.io.recordings.read_events` reads its file, the
    clock check deferred (:class:`~driftbayes.events.Screen` ``defer_clock``)."""
    from driftbayes.events import screening
    from driftbayes.io.enrich import Enricher
    from driftbayes.io.recordings import read_events

    try:
        screen = Screen(config.limits, defer_clock=True)
        bad = BadRecordReport(keep=keep)
        enricher = Enricher(config, openapi=openapi, sessions=False)
        with screening(screen):
            batches = list(read_events(part.path, fmt=part.fmt, mapping=part.mapping,
                                       report=bad, enricher=enricher, batch_size=batch_size,
                                       prefetch=False, **part.reader_options()))
    except Exception as exc:
        raise PartitionError(f"{part}: {_one_line(exc)}") from None
    if len(screen.deferred) != len(batches):  # every batch with a good record is yielded
        raise PartitionError(f"{part}: {len(batches)} batches but {len(screen.deferred)} "
                             "screened")
    return ReadPartition(part, batches, screen.deferred, bad)


def clock_input(read: ReadPartition) -> tuple[list[np.ndarray], BadRecordReport]:
    return read.ts, read.bad


# --------------------------------------------------------------------------------------------
# stage 4: route


@dataclass
class Routed:
    """One partition routed: per session group, ``(batch, windows)`` pieces in stream order;
    and what the client merges in stream order."""

    pieces: list[list[tuple[EventBatch, np.ndarray]]]
    names: tuple[dict, dict, dict]  # endpoint keys, personas, statuses → window of first event
    bodies: dict
    bad: BadRecordReport
    events: int
    t_last: float


def route_partition(read: ReadPartition, rejected: list[dict[int, str]], start: int | None,
                    config: Config, groups: int, keep: int) -> Routed:
    """Drop the records the clock rejected, give every event its learning window (from
    ``start``, the stream's window before this partition), and split by session group."""
    from driftbayes.io.enrich import Enricher
    from driftbayes.redact import RedactionPolicy, redact_text

    try:
        enricher = Enricher(config, sessions=False)
        policy = RedactionPolicy.from_config(config)
        interval = float(config.update_interval)
        pieces: list[list] = [[] for _ in range(groups)]
        names: tuple[dict, dict, dict] = ({}, {}, {})
        bodies: dict = {}
        bad = BadRecordReport(keep=keep)
        events, t_last, cur = 0, math.nan, start
        for seq, (batch, rej) in enumerate(zip(read.batches, rejected)):
            if rej:
                for i, reason in sorted(rej.items()):
                    bad.add(BadRecord(batch.source, int(batch.line[i]), "ts",
                                      redact_text(reason, policy=policy)))
                keep_mask = np.ones(len(batch), bool)
                keep_mask[list(rej)] = False
                batch = batch.take(np.flatnonzero(keep_mask))
            if not len(batch):
                continue
            win = np.floor(batch.ts / interval).astype(np.int64)
            if cur is None:
                cur = int(win[0])
            eff = np.maximum.accumulate(np.concatenate([[cur], win]))[1:]
            cur = int(eff[-1])
            _first_names(batch, eff, names)
            bodies.update(response_bodies(batch))
            group = _groups(enricher, batch, seq, groups)
            order = np.argsort(group, kind="stable")  # each group's events, in stream order
            bounds = np.searchsorted(group[order], np.arange(groups + 1))
            present = np.flatnonzero(np.diff(bounds)).tolist()
            if len(present) == 1:  # one group: no copy
                pieces[present[0]].append((batch, eff))
                present = []
            for g in present:
                idx = order[bounds[g]:bounds[g + 1]]
                pieces[g].append((batch.take(idx), eff[idx]))
            events += len(batch)
            t_last = float(np.nanmax([t_last, batch.ts.max()]))
    except Exception as exc:
        raise PartitionError(f"{read.part}: {_one_line(exc)}") from None
    return Routed(pieces, names, bodies, bad, events, t_last)


def _first_names(batch: EventBatch, eff: np.ndarray, names: tuple[dict, dict, dict]) -> None:
    """Record each new endpoint key, persona and status with the window of its first event."""
    endpoints, personas, statuses = names
    mc, mu = pd.factorize(batch.method)
    tc, tu = pd.factorize(batch.endpoint)
    _, first = np.unique(mc * len(tu) + tc, return_index=True)
    for i in np.sort(first).tolist():
        endpoints.setdefault(f"{mu[mc[i]]} {tu[tc[i]]}", int(eff[i]))
    _, first = np.unique(pd.factorize(batch.persona)[0], return_index=True)
    for i in np.sort(first).tolist():
        personas.setdefault(batch.persona[i], int(eff[i]))
    has = np.flatnonzero(batch.status > 0)
    if has.size:
        _, first = np.unique(batch.status[has], return_index=True)
        for i in has[np.sort(first)].tolist():
            statuses.setdefault(int(batch.status[i]), int(eff[i]))


def _groups(enricher, batch: EventBatch, seq: int, groups: int) -> np.ndarray:
    """Each event's session group: a stable hash of the key its session is cut from, else of
    its session id (``key#k`` ids by their key, :func:`~driftbayes.io.enrich.session_groups`);
    events without a session go with their batch's number."""
    from driftbayes.io.enrich import session_groups

    out = np.full(len(batch), seq % groups, dtype=np.int64)
    if groups == 1:
        return out
    keys = enricher.cut_keys(batch)
    cut = np.not_equal(keys, None)
    named = ~cut & (batch.session != "")
    if cut.any():
        out[cut] = bucket(keys[cut], groups)
    if named.any():
        codes, ids = pd.factorize(batch.session[named])
        out[named] = bucket(session_groups(np.asarray(ids, dtype=object)), groups)[codes]
    return out


# --------------------------------------------------------------------------------------------
# stage 5: learn


@dataclass
class GroupLearner:
    """One session group's shard of per-(cell, window) sums and the enricher's session cut
    state (time of the last event and sessions cut so far, per key) of its keys."""

    shard: DriftLearner
    last_seen: dict
    session_count: dict


def learn_group(state: GroupLearner, config: Config,
                piece: list[tuple[EventBatch, np.ndarray]], group: int = 0,
                part: str = "") -> GroupLearner:
    """Continue a session group with its events of the next partition (``(batch, windows)``
    pieces in stream order): cut sessions per original batch, then map to sums. ``part``
    names the partition in errors."""
    from driftbayes.io.enrich import Enricher

    try:
        enricher = Enricher(config)
        enricher.last_seen, enricher.session_count = state.last_seen, state.session_count
        for batch, eff in piece:
            state.shard.learn_many(enricher.cut(batch), windows=eff)
    except Exception as exc:
        raise PartitionError(f"{part}: session group {group}: {_one_line(exc)}") from None
    return state


def merge_groups(a: GroupLearner, b: GroupLearner) -> GroupLearner:
    return GroupLearner(a.shard + b.shard, {}, {})


# --------------------------------------------------------------------------------------------
# stages 6-7: reduce and scan, per block of endpoints


def block_masks(endpoints: list[str], blocks: int) -> list[np.ndarray]:
    """Each block's endpoints, an ``(E,)`` mask per block (:func:`~driftbayes.blocks.block_of`:
    a stable hash of their names, so every process splits alike)."""
    from driftbayes.blocks import block_of

    at = block_of(endpoints, blocks)
    return [at == b for b in range(blocks)]


def split_group(state: GroupLearner, names: tuple, blocks: int, window: int | None) -> list:
    """A session group's shard split into ``blocks`` blocks of endpoints in the run's whole
    vocabulary ``names``, ending at the run's last ``window``
    (:meth:`~driftbayes.learner.DriftLearner.split_blocks`)."""
    return state.shard.split_blocks(names, blocks, window)


def scan_block(learner: DriftLearner, sums, joins: dict, block: int,
               blocks: int) -> DriftLearner:
    """Stage 7 for one block of endpoints: a copy of ``learner`` that keeps only the block's
    cells scans the block's merged sums (a :class:`~driftbayes.blocks.BlockSums`) with the
    whole run's ``joins``; its cells come back up to date
    (:meth:`~driftbayes.learner.DriftLearner.join_blocks`)."""
    import copy

    out = copy.deepcopy(learner)
    out.keep_endpoints(block_masks(out.endpoints_, blocks)[block], start=block == 0)
    out.learn_sums(sums.shard(out.config), joins=joins)
    out.evidence_  # noqa: B018 - brings every cell up to date with the last closed window
    return out


def route_piece(r: Routed, group: int) -> list[tuple[EventBatch, np.ndarray]]:
    return r.pieces[group]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (ValueError, OSError, RuntimeError)) else (
        f"{type(exc).__name__}: {text}")


# --------------------------------------------------------------------------------------------
# the run


def plan(sources: list, *, fmt: str | None = None, partition_bytes: int = PARTITION_BYTES,
         batch_size: int = 65536, mapper: Callable | None = None) -> list:
    """Every input's partitions, in reading order, ranges aligned to batch boundaries.

    ``mapper(fn, items)`` runs ``fn`` over the split files' ranges (counting their lines), on a
    cluster or here (the default); it returns the results in order.
    """
    from driftbayes.io.partitions import (
        batch_aligned,
        count_lines,
        first_lines,
        plan_input,
    )

    mapper = mapper or (lambda fn, items: list(map(fn, items)))
    parts = [p for i, src in enumerate(sources)
             for p in plan_input(src, i, fmt=fmt, partition_bytes=partition_bytes)]
    ranges = [i for i, p in enumerate(parts) if not p.whole]
    if not ranges:
        return parts
    counts: list = [None] * len(parts)
    for i, n in zip(ranges, mapper(count_lines, [parts[i] for i in ranges])):
        counts[i] = n
    parts = first_lines(parts, counts)
    offsets: list = [None] * len(parts)
    found = mapper(_grid_offset, [(parts[i], batch_size) for i in ranges])
    for i, at in zip(ranges, found):
        offsets[i] = at
    return batch_aligned(parts, offsets)


def _grid_offset(item: tuple) -> tuple[int, int] | None:
    from driftbayes.io.partitions import grid_offset

    return grid_offset(*item)


class Driver:
    """The client's side of a distributed run, on any engine: the stream clock in partition
    order, the session groups' start, and the scan over the merged sums.

    Parameters
    ----------
    learner : DriftLearner
        Learned into by :meth:`finish` (and read, not changed, before).
    groups : int
        Session groups.
    keep : int
        Bad records kept with their reasons per partition (the report's ``keep``).
    """

    def __init__(self, learner: DriftLearner, groups: int, keep: int = 5):
        self.learner, self.groups, self.keep = learner, groups, keep
        self.screen = Screen(learner.config.limits, clock=learner.t_last_)
        self.window = learner.window_
        self.local_bad: list[BadRecordReport] = []
        self.first_ts: list[float] = []

    def start_groups(self) -> list[GroupLearner]:
        """Each session group's start: a shard resuming the learner's open sessions of the
        group, and the enricher's session count of its keys."""
        from driftbayes.io.enrich import Enricher, session_groups

        learner, groups = self.learner, self.groups
        cutter = Enricher(learner.config).resume_from(learner)
        ids = np.array([s.session for s in learner.sessions.open()], dtype=object)
        at = bucket(session_groups(ids), groups) if ids.size else np.zeros(0, np.int64)
        out = [GroupLearner(DriftLearner.shard(learner.config, resume=learner,
                                               sessions=ids[at == g].tolist()), {}, {})
               for g in range(groups)]
        keys = list(cutter.last_seen)
        for key, g in zip(keys, bucket(keys, groups).tolist()):
            out[g].last_seen[key], out[g].session_count[key] = (cutter.last_seen[key],
                                                                 cutter.session_count[key])
        return out

    def clock(self, ts_list: list[np.ndarray], bad: BadRecordReport
              ) -> tuple[list[dict[int, str]], int | None]:
        """The next partition's clock check (its :func:`clock_input`; call in stream order):
        the records it rejects, per batch, and the stream's window before the partition, for
        :func:`route_partition`."""
        interval = float(self.learner.config.update_interval)
        self.local_bad.append(bad)
        rejected, start, first = [], self.window, math.nan
        for ts in ts_list:
            reasons = self.screen.clock_check(ts)
            fine = ~np.isnan(ts)
            at = np.cumsum(fine) - 1  # position among the batch's good records
            rejected.append({int(at[i]): r for i, r in reasons.items()})
            ok = fine.copy()
            ok[list(reasons)] = False
            t = ts[ok]
            if t.size:
                if math.isnan(first):
                    first = float(t[0])
                if self.window is None:
                    self.window = int(np.floor(t[0] / interval))
                self.window = max(self.window, int(np.floor(t / interval).max()))
        self.first_ts.append(first)
        return rejected, start

    def bad_records(self, summaries: list[tuple]) -> BadRecordReport:
        """The run's bad records in stream order (``summaries``: each partition's
        :func:`route_summary`, in order)."""
        out = BadRecordReport(keep=self.keep)
        for local, summary in zip(self.local_bad, summaries):
            out.merge(_in_line_order(local, summary[2], self.keep))
        return out

    def joins(self, summaries: list[tuple]) -> dict:
        """The run's new names by the window they join in (for :func:`scan_block`)."""
        return _merge_meta(self.learner, summaries, self.first_ts)[0]

    def vocabulary(self, summaries: list[tuple]) -> tuple[list, list, list]:
        """The run's whole vocabulary (endpoints, personas, statuses, in code order): the
        learner's, then the new names in the order they join."""
        out = (list(self.learner.endpoints_), list(self.learner.personas_),
               list(self.learner.statuses_))
        joins = self.joins(summaries)
        for w in sorted(joins):
            for names, more in zip(out, joins[w]):
                names.extend(more)
        return out

    def scan_start(self) -> DriftLearner:
        """What each block's scan starts from (:func:`scan_block`): a copy of the learner
        without its open sessions (the shards continued them)."""
        import copy

        sessions, self.learner.sessions = self.learner.sessions, OpenSessions()
        try:
            return copy.deepcopy(self.learner)
        finally:
            self.learner.sessions = sessions

    def finish(self, merged: DriftLearner | list[DriftLearner], summaries: list[tuple],
               report: BadRecordReport | None = None, strict: bool = False) -> int:
        """Scan the merged sums into the learner (names joining in stream order), report the
        bad records; returns the events learned. ``merged`` is the merged shard (scanned
        here) or every block's :func:`scan_block`, in block order (joined here). ``strict``
        and a bad record: raises :class:`~driftbayes.events.BadRecordError` (the first), the
        learner untouched."""
        bad = self.bad_records(summaries)
        if strict and bad.count:
            raise BadRecordError(bad.first[0])
        learner = self.learner
        joins, bodies, events, t_first = _merge_meta(learner, summaries, self.first_ts)
        fresh = learner.window_ is None
        if isinstance(merged, list):
            learner.join_blocks(merged, block_masks(merged[0].endpoints_, len(merged)))
        else:
            merged.bodies_ = {}
            learner.sessions = OpenSessions()  # the shards continued them
            learner.learn_sums(merged, joins=joins)
        learner.bodies_.update(bodies)
        if fresh and not math.isnan(t_first):
            learner.t_first_ = t_first
        if report is not None:
            report.merge(bad)
        return events


def learn_distributed(learner: DriftLearner, sources, client, *, fmt: str | None = None,
                      strict: bool = False, report: BadRecordReport | None = None,
                      openapi=None, batch_size: int = 65536,
                      partition_bytes: int = PARTITION_BYTES, groups: int | None = None,
                      blocks: int | None = None,
                      progress: Callable[[str, int, int], None] | None = None,
                      stages: Stages | None = None) -> int:
    """Learn ``sources`` (paths or registered recordings, in order) into ``learner`` on the
    Dask cluster of ``client``: exactly what one process learns from them (module docstring).
    Returns the number of events learned.

    Parameters
    ----------
    learner : DriftLearner
        Learned into (its config, clock, open sessions and vocabulary continue), untouched
        when the run fails.
    sources : str, path or list of them
    client : dask.distributed.Client
    fmt, strict, report, openapi, batch_size
        As for :func:`~driftbayes.io.recordings.read_events`; ``report`` receives the bad
        records of every partition, in stream order.
    partition_bytes : int
        Line files larger than this are read in ranges of about this size.
    groups : int, optional
        Session groups learned in parallel (default: the cluster's threads).
    blocks : int, optional
        Blocks of endpoints the reduce and the scan split into, each scanned by a worker
        (default: the cluster's threads).
    progress : callable, optional
        ``progress(stage, done, total)`` after each partition read and each group learned.
    stages : Stages, optional
        Filled with each stage's wall time.

    Raises
    ------
    PartitionError
        A partition failed (its file and byte range named); nothing was learned.
    BadRecordError
        ``strict`` and a bad record (the first in stream order); nothing was learned.
    """
    from distributed import as_completed, wait

    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    stages = stages if stages is not None else Stages()
    report = report if report is not None else BadRecordReport()
    cfg = learner.config
    keep = report.keep
    tick = progress or (lambda *a: None)
    t0 = time.perf_counter()
    parts = plan(list(sources), fmt=fmt, partition_bytes=partition_bytes,
                 batch_size=batch_size,
                 mapper=lambda fn, items: client.gather(client.map(fn, items, pure=False)))
    threads = max(sum(client.nthreads().values()), 1)
    groups = threads if groups is None else groups
    blocks = threads if blocks is None else blocks
    stages.partitions, stages.groups, stages.blocks = len(parts), groups, blocks
    t1 = time.perf_counter()
    stages.plan = t1 - t0
    driver = Driver(learner, groups, keep)
    live: dict = {}  # outstanding futures by key, cancelled if the run fails
    try:
        reads = [client.submit(read_partition, p, cfg, openapi, batch_size, keep, pure=False,
                               priority=-i) for i, p in enumerate(parts)]
        inputs = [client.submit(clock_input, r, pure=False) for r in reads]
        live.update({f.key: f for f in reads + inputs})
        # each group's chain keeps to one worker (its shard stays there; pieces travel)
        workers = sorted(client.scheduler_info()["workers"])
        home = [[workers[g % len(workers)]] for g in range(groups)]
        shards = [client.scatter(state, workers=home[g], hash=False)
                  for g, state in enumerate(driver.start_groups())]
        order = {f.key: k for k, f in enumerate(inputs)}
        ready: dict[int, tuple] = {}
        summaries: list = []
        for fut in as_completed(inputs):  # the clock, in stream order as partitions arrive
            ready[order[fut.key]] = fut.result()
            live.pop(fut.key, None)
            while len(summaries) in ready:
                k = len(summaries)
                rejected, start = driver.clock(*ready.pop(k))
                route = client.submit(route_partition, reads[k], rejected, start, cfg, groups,
                                      keep, pure=False, priority=10)
                summaries.append(client.submit(route_summary, route, pure=False, priority=10))
                for g in range(groups):
                    piece = client.submit(route_piece, route, g, pure=False, priority=20)
                    live.pop(shards[g].key, None)
                    shards[g] = client.submit(learn_group, shards[g], cfg, piece, g,
                                              str(parts[k]), pure=False, priority=20,
                                              workers=home[g], allow_other_workers=True)
                    live[shards[g].key] = shards[g]
                live.pop(reads[k].key, None)
                reads[k] = None  # the route holds what it needs
                tick("read", k + 1, len(parts))
        del reads, inputs
        summaries = client.gather(summaries)
        if strict and driver.bad_records(summaries).count:
            driver.finish(None, summaries, strict=True)  # raises the first bad record
        for done, _ in enumerate(as_completed(shards), start=1):
            tick("learn", done, groups)
        t2 = time.perf_counter()
        stages.map = t2 - t1
        # each group's shard splits into blocks of endpoints; each block reduces in a tree
        # and scans on a worker: the merged sums of all cells never meet in one place
        names = driver.vocabulary(summaries)
        split = [client.submit(split_group, g, names, blocks, driver.window, pure=False,
                               priority=30) for g in shards]
        live = {f.key: f for f in split}
        merged = []
        for b in range(blocks):
            level = [client.submit(operator.getitem, f, b, pure=False, priority=30)
                     for f in split]
            while len(level) > 1:  # tree reduce
                level = [client.submit(operator.add, x, y, pure=False, priority=30)
                         for x, y in zip(level[0::2], level[1::2])] + level[len(level) // 2 * 2:]
            merged.append(level[0])
        del shards, split
        live = {f.key: f for f in merged}
        wait(merged)
        t3 = time.perf_counter()
        stages.reduce = t3 - t2
        start = client.scatter(driver.scan_start(), broadcast=True, hash=False)
        joins = driver.joins(summaries)
        scans = [client.submit(scan_block, start, m, joins, b, blocks, pure=False, priority=40)
                 for b, m in enumerate(merged)]
        live = {f.key: f for f in scans}
        del merged
        wait(scans)
        stages.scanned_on = [sorted(client.who_has(f)[f.key])[0] for f in scans]
        scans = client.gather(scans)
    except BaseException:
        client.cancel(list(live.values()))
        raise
    del live
    # nothing touched the learner before this point
    t4 = time.perf_counter()
    events = driver.finish(scans, summaries, report)
    t5 = time.perf_counter()
    stages.scan = t5 - t3
    stages.seconds["join"] = t5 - t4
    stages.events = events
    return events


def _merge_meta(learner, meta, starts):
    """The run's new names in order of first appearance by join window, the response bodies,
    event count and first event time, from the partitions in order."""
    seen: tuple[dict, dict, dict] = ({}, {}, {})
    bodies: dict = {}
    events = 0
    for names, part_bodies, _, n, _ in meta:
        for which, found in enumerate(names):
            for name, w in found.items():
                seen[which].setdefault(name, w)
        bodies.update(part_bodies)
        events += n
    vocabs = (learner.endpoint_vocab, learner.persona_vocab, learner.status_vocab)
    joins: dict[int, tuple[list, list, list]] = {}
    for which in range(3):
        for name, w in seen[which].items():
            if name not in vocabs[which]:
                joins.setdefault(w, ([], [], []))[which].append(name)
    t_first = next((t for t in starts if not math.isnan(t)), math.nan)
    return joins, bodies, events, t_first


def route_summary(r: Routed) -> tuple:
    return r.names, r.bodies, r.bad, r.events, r.t_last


def _in_line_order(local: BadRecordReport, clock: BadRecordReport, keep: int
                   ) -> BadRecordReport:
    """One partition's bad records in file order: the reader's and the one-record checks'
    (``local``) and the clock's, each already in order; a broken gzip stream's record last."""
    out = BadRecordReport(keep=keep)
    out.count = local.count + clock.count
    for b in (local, clock):
        for name, n in b.by_field.items():
            out.by_field[name] = out.by_field.get(name, 0) + n
    merged = sorted(local.first + clock.first,
                    key=lambda b: math.inf if b.field == "gzip" else b.line)
    out.first = merged[:keep]
    return out

