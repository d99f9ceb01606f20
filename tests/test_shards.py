"""Per-(cell, window) sums are the mergeable unit: shards of one stream split by session key,
merged in any order and scanned, give exactly what one learner gives on the whole stream."""

from __future__ import annotations

import dataclasses
import functools
import operator
import zlib

import numpy as np
import pytest

from driftbayes.config import Config
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from driftbayes.stats import STAT_DIMS
from tests.helpers import dense
from tests.test_lazy_equivalence import CONFIGS, assert_close, stream


def by_session(batch, k: int) -> list:
    """``k`` shards: whole sessions stay together (sessionless events by line)."""
    key = [zlib.crc32((s or f"line-{i}").encode()) % k
           for i, s in enumerate(batch.session.tolist())]
    key = np.asarray(key)
    return [batch.take(np.flatnonzero(key == j)) for j in range(k)]


def reindexed(learner: DriftLearner, names: DriftLearner) -> dict:
    """``learner``'s statistics and gates in ``names``' vocabulary order."""
    ie = np.array([learner.endpoint_index[n] for n in names.endpoints_])
    ip = np.array([learner.persona_index[n] for n in names.personas_])
    is_ = np.array([learner.status_vocab.codes[c] for c in names.statuses_])
    isrc = np.r_[ie, len(ie)]
    idx = {"endpoint": ie, "persona": ip, "status": is_, "src": isrc, "dst": isrc}
    out = {}
    for attr in ("evidence_", "applied_", "pending_"):
        for name, dims in STAT_DIMS.items():
            a = dense(getattr(learner, attr)[name])
            sel = tuple(idx.get(d, np.arange(a.shape[i])) for i, d in enumerate(dims))
            out[f"{attr}{name}"] = a[np.ix_(*sel)]
    for kind, g in learner.gate_.items():
        sel = (ip, isrc) if kind == "transitions" else (ie, ip)
        out[f"gate_{kind}"] = g[np.ix_(*sel)]
    return out


def keyed(rows: list[dict]) -> dict:
    """Pattern rows by cell and kind; destinations of tied probability may be named in
    another vocabulary order, so ``top_next`` compares as its sorted probabilities."""
    out = {}
    for r in rows:
        r = dict(r)
        if r["kind"] == "transitions":
            r["top_next"] = sorted(r["top_next"].values())
            r.pop("next")
        out[(r["method"], r["endpoint"], r["persona"], r["kind"])] = r
    return out


@pytest.mark.parametrize("name", ["defaults", "no-decay", "eager", "fast-decay"])
@pytest.mark.parametrize("k", [2, 3])
def test_scan_of_merged_shards_equals_one_learner(name, k):
    cfg = Config(**CONFIGS[name])
    batch = stream(5 + k, 8, max_gap=40, late=0.0)
    one = DriftLearner(cfg).learn_many(batch)
    shards = [DriftLearner.shard(cfg).learn_many(part) for part in by_session(batch, k)]
    for order in (shards, shards[::-1]):
        merged = functools.reduce(operator.add, order)
        scan = DriftLearner(cfg).learn_sums(merged)
        assert sorted(scan.endpoints_) == sorted(one.endpoints_)
        assert scan.window_ == one.window_ and scan.n_events_ == one.n_events_
        got, want = reindexed(scan, one), reindexed(one, one)
        for key, arr in want.items():
            np.testing.assert_allclose(got[key], arr, rtol=1e-9, atol=1e-9, err_msg=key)
        for layer in ("prior", "posterior", "applied"):
            assert_close(keyed(patterns(scan, layer)), keyed(patterns(one, layer)), (layer,))


def test_a_shard_keeps_an_endpoint_only_it_saw():
    cfg = Config()
    batch = stream(41, 4, max_gap=5, late=0.0)
    parts = by_session(batch, 2)
    a, b = (DriftLearner.shard(cfg).learn_many(p) for p in parts)
    merged = a + b
    assert set(merged.endpoints_) == set(a.endpoints_) | set(b.endpoints_)
    total = sum(s["freq_count"].sum() for s in merged.window_sums_.values())
    total += merged.pending_["freq_count"].sum()
    assert total == len(batch)


def test_learn_sums_needs_a_shard():
    with pytest.raises(ValueError, match="needs a shard"):
        DriftLearner().learn_sums(DriftLearner())


@pytest.mark.parametrize("name", ["defaults", "eager"])
def test_shards_split_in_time_at_a_session_boundary(name):
    # split where every session has ended (a silence longer than session_gap): exact too
    cfg = Config(**CONFIGS[name])
    first, later = stream(51, 5, max_gap=10, late=0.0), stream(52, 5, max_gap=10, late=0.0)
    gap = float(cfg.session_gap) + 600.0
    later = dataclasses.replace(later, ts=later.ts - later.ts.min() + first.ts.max() + gap)
    one = DriftLearner(cfg).learn_many(first).learn_many(later)
    a, b = DriftLearner.shard(cfg).learn_many(first), DriftLearner.shard(cfg).learn_many(later)
    for merged in (a + b, b + a):
        scan = DriftLearner(cfg).learn_sums(merged)
        got, want = reindexed(scan, one), reindexed(one, one)
        for key, arr in want.items():
            np.testing.assert_allclose(got[key], arr, rtol=1e-9, atol=1e-9, err_msg=key)
        assert_close(keyed(patterns(scan, "applied")), keyed(patterns(one, "applied")))


@pytest.mark.parametrize("name", ["defaults", "no-decay", "eager"])
def test_how_events_are_batched_does_not_change_what_is_learned(name):
    # a name joins in the window of its first event, so a cell's exposure starts there
    # whichever batch brought it
    cfg = Config(**CONFIGS[name])
    batch = stream(61, 8, max_gap=30)
    whole = DriftLearner(cfg).learn_many(batch)
    chunked = DriftLearner(cfg)
    for part in np.array_split(np.arange(len(batch)), 9):
        chunked.learn_many(batch.take(part))
    assert chunked.endpoints_ == whole.endpoints_
    got, want = reindexed(chunked, whole), reindexed(whole, whole)
    for key, arr in want.items():
        np.testing.assert_allclose(got[key], arr, rtol=1e-9, atol=1e-9, err_msg=key)
    for layer in ("prior", "posterior", "applied"):
        assert_close(patterns(chunked, layer), patterns(whole, layer), (layer,))


@pytest.mark.parametrize("name", ["defaults", "no-decay", "eager", "fast-decay", "no-pooling"])
def test_a_scan_split_by_endpoint_equals_the_whole_scan(name):
    """Shards split into blocks of endpoints (in the whole run's vocabulary) and added per
    block; each block scanned alone (its sums, the whole run's joins) ends with its cells'
    statistics, gates and transition rows as the whole scan does (its patterns would not:
    reading a layer closes the open window only when it holds events, of any block); joined,
    the blocks are the whole scan, history included."""
    from driftbayes.distributed import block_masks, scan_block

    cfg = Config(**CONFIGS[name])
    batch = stream(11, 10, max_gap=40, late=0.0)
    shards = [DriftLearner.shard(cfg).learn_many(part) for part in by_session(batch, 3)]
    merged = functools.reduce(operator.add, shards)
    whole = DriftLearner(cfg, track_history=True).learn_sums(merged)
    joins = merged.first_seen()
    names = (whole.endpoints_, whole.personas_, whole.statuses_)
    last = max(s.window_ for s in shards)
    assert min(s.window_ for s in shards) < last  # a shard moves to the run's last window
    sums = [functools.reduce(operator.add, blocks) for blocks in
            zip(*(s.split_blocks(names, 4, last) for s in shards))]
    masks = block_masks(whole.endpoints_, 4)
    assert all(m.any() for m in masks)  # every block has endpoints
    parts = [scan_block(DriftLearner(cfg, track_history=True), blk, joins, b, 4)
             for b, blk in enumerate(sums)]
    want = reindexed(whole, whole)
    for b, (part, mask) in enumerate(zip(parts, masks)):
        assert part.endpoints_ == whole.endpoints_  # the same names, joined alike
        rows = np.r_[mask, b == 0]
        got = reindexed(part, whole)
        for key, arr in want.items():
            by_row = key == "gate_transitions" or key.endswith("trans_count")
            sel = (slice(None), rows) if by_row else mask
            np.testing.assert_allclose(got[key][sel], arr[sel], rtol=1e-9, atol=1e-9,
                                       err_msg=f"block {b}: {key}")
    joined = DriftLearner(cfg, track_history=True).join_blocks(parts, masks)
    assert (joined.window_, joined.n_windows_, joined.n_events_, joined.changes_) == (
        whole.window_, whole.n_windows_, whole.n_events_, whole.changes_)
    assert sorted(joined.sessions.open()) == sorted(whole.sessions.open())
    got = reindexed(joined, whole)
    for key, arr in want.items():
        np.testing.assert_allclose(got[key], arr, rtol=1e-9, atol=1e-9, err_msg=key)
    for layer in ("prior", "posterior", "applied"):
        assert_close(patterns(joined, layer), patterns(whole, layer), (layer,))
    assert len(joined.history_) == len(whole.history_) > 0
    assert_close([list(r) for r in joined.history_], [list(r) for r in whole.history_])


def test_the_split_scan_runs_with_changes_detected_and_personas_pooled():
    """The inputs of the test above do exercise what couples cells within an endpoint."""
    cfg = Config(**CONFIGS["eager"])
    batch = stream(11, 10, max_gap=40, late=0.0)
    one = DriftLearner(cfg).learn_many(batch)
    assert one.changes_ > 0
    counts = one.evidence_["lat_n"]
    assert ((counts > 0).sum(axis=1) > 1).any()  # endpoints seen by several personas
    pooled = one.pooled_evidence()["lat_n"]
    assert not np.allclose(pooled, counts)  # and pooling moves their cells
