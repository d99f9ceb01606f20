"""The lazy learner equals the window-by-window one it replaced.

``tests/reference/window_learner.py`` is the learner as it was before cells were advanced
lazily: every window closed every cell. Streams with long silences, late events, bursts on a few
cells, sessions that end in silence, growing vocabularies, resets and merges must give the same
evidence, applied layer, gates and patterns (all three layers) to 1e-9 relative.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from tests.helpers import dense
from tests.reference.patterns import patterns as reference_patterns
from tests.reference.window_learner import DriftLearner as WindowLearner

RTOL = ATOL = 1e-9
ENDPOINTS = [f"/api/r{i}/{{id}}" for i in range(6)]
PERSONAS = ["web", "mobile", "batch"]


def stream(seed: int, bursts: int, *, max_gap: int = 300, late: float = 0.05,
           interval: float = 60.0) -> EventBatch:
    """Bursts of traffic on a few cells separated by silences of up to ``max_gap`` windows."""
    rng = np.random.default_rng(seed)
    t, parts = 1.7e9, []
    for _ in range(bursts):
        t += interval * float(rng.integers(0, max_gap + 1)) + float(rng.uniform(0, interval))
        n = int(rng.integers(1, 60))
        eps = rng.choice(len(ENDPOINTS), size=int(rng.integers(1, 4)), replace=False)
        ts = t + np.sort(rng.uniform(0, interval * float(rng.integers(1, 8)), n))
        t = float(ts[-1])
        ts = np.where(rng.random(n) < late, ts - rng.uniform(0, 5 * interval, n), ts)
        median = float(np.exp(rng.uniform(np.log(5), np.log(800))))
        sessions = rng.integers(0, 12, n)
        parts.append(EventBatch(
            ts=ts,
            method=np.full(n, "GET", dtype=object),
            endpoint=np.asarray(ENDPOINTS, dtype=object)[rng.choice(eps, n)],
            status=np.where(rng.random(n) < float(rng.choice([0.0, 0.02, 0.5])),
                            int(rng.choice([500, 503])),
                            int(rng.choice([200, 200, 404]))),
            latency_ms=np.exp(rng.normal(np.log(median), 0.4, n)),
            persona=np.asarray(PERSONAS, dtype=object)[rng.integers(0, len(PERSONAS), n)],
            session=np.array([f"s{seed}-{s}" if s < 10 else "" for s in sessions], dtype=object),
            line=np.arange(1, n + 1),
        ))
    return EventBatch.concat(parts)


CONFIGS = {
    "defaults": {},
    "no-decay": {"decay": 0.0},
    "fast-decay": {"decay": 0.3, "min_samples": 3, "confidence_threshold": 0.3},
    "no-pooling": {"persona_adaptation": False, "sensitivity": 1.0},
    "no-changepoint": {"changepoint_z": 0.0, "decay": 0.02},
    "eager": {"changepoint_z": 2.0, "min_samples": 2, "confidence_threshold": 0.1,
              "session_gap": 300},
    "no-decay-eager": {"decay": 0.0, "min_samples": 2, "confidence_threshold": 0.2,
                       "sensitivity": 0.5},
}


def assert_same(lazy: DriftLearner, ref: WindowLearner) -> None:
    assert lazy.endpoints_ == ref.endpoints_ and lazy.personas_ == ref.personas_
    assert lazy.statuses_ == ref.statuses_
    assert lazy.window_ == ref.window_ and lazy.n_windows_ == ref.n_windows_
    assert lazy.changes_ == ref.changes_ and lazy.n_late_ == ref.n_late_
    for attr in ("evidence_", "applied_", "pending_"):
        a, b = getattr(lazy, attr), getattr(ref, attr)
        for name, arr in b.arrays.items():
            np.testing.assert_allclose(dense(a[name]), arr, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{attr}[{name}]")
    for kind, g in ref.gate_.items():
        np.testing.assert_array_equal(lazy.gate_[kind], g, err_msg=f"gate {kind}")


def assert_close(got, want, where=()) -> None:
    """Recursive equality with floats compared to 1e-9 relative."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), where
        for key in want:
            assert_close(got[key], want[key], where + (key,))
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, where + (i,))
    elif isinstance(want, float):
        assert (math.isnan(want) and math.isnan(got)) or math.isclose(
            got, want, rel_tol=RTOL, abs_tol=ATOL), (where, got, want)
    else:
        assert got == want, (where, got, want)


def assert_same_patterns(lazy: DriftLearner, ref: WindowLearner) -> None:
    for layer in ("prior", "posterior", "applied"):
        assert_close(patterns(lazy, layer), reference_patterns(ref, layer), (layer,))


def learn_both(batch: EventBatch, knobs: dict, chunks: int = 4):
    cfg = Config(**knobs)
    lazy, ref = DriftLearner(cfg), WindowLearner(cfg)
    for part in np.array_split(np.arange(len(batch)), chunks):
        lazy.learn_many(batch.take(part))
        ref.learn_many(batch.take(part))
        assert_same(lazy, ref)
    return lazy, ref


@pytest.mark.parametrize("name", list(CONFIGS))
def test_lazy_equals_window_by_window(name):
    lazy, ref = learn_both(stream(7, 10, max_gap=120), CONFIGS[name])
    assert_same_patterns(lazy, ref)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), bursts=st.integers(1, 8),
       name=st.sampled_from(sorted(CONFIGS)), max_gap=st.sampled_from([0, 3, 40, 150]),
       chunks=st.integers(1, 5))
def test_lazy_equals_window_by_window_property(seed, bursts, name, max_gap, chunks):
    lazy, ref = learn_both(stream(seed, bursts, max_gap=max_gap), CONFIGS[name], chunks)
    assert_same_patterns(lazy, ref)


@pytest.mark.parametrize("name", ["defaults", "no-decay"])
def test_silence_longer_than_the_exact_span(name):
    # beyond 2,000 empty windows both learners skip in closed form with the gates held closed
    first, later = stream(3, 6, max_gap=5), stream(4, 4, max_gap=5)
    later = dataclasses.replace(later, ts=later.ts + first.ts.max() - later.ts.min() + 6e5)
    batch = EventBatch.concat([first, later])
    lazy, ref = learn_both(batch, CONFIGS[name], chunks=2)
    assert_same_patterns(lazy, ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["defaults", "no-decay", "eager"])
def test_reset_and_merge(name):
    cfg = Config(**CONFIGS[name])
    a, b = stream(11, 10), stream(12, 10, max_gap=30)
    lazy, ref = DriftLearner(cfg).learn_many(a), WindowLearner(cfg).learn_many(a)
    assert lazy.reset(endpoint=ENDPOINTS[0]) == ref.reset(endpoint=ENDPOINTS[0])
    assert_same(lazy, ref)
    lazy.learn_many(b)
    ref.learn_many(b)
    assert_same(lazy, ref)
    merged_lazy = DriftLearner(cfg).learn_many(stream(13, 6)) + lazy
    merged_ref = WindowLearner(cfg).learn_many(stream(13, 6)) + ref
    assert_same(merged_lazy, merged_ref)
    assert_same_patterns(merged_lazy, merged_ref)


def test_far_future_event_after_a_learned_state():
    # 50,000 windows of silence: both skip all but the last 2,000 in closed form (the cost of
    # a far-future event is measured by benchmarks/learn_speed.py)
    first = stream(21, 6, max_gap=5)
    one = stream(22, 1, max_gap=0).take(np.arange(1))
    far = dataclasses.replace(one, ts=np.array([first.ts.max() + 3e6]))
    lazy, ref = learn_both(EventBatch.concat([first, far]), {}, chunks=2)
    assert lazy.n_windows_ > 50_000
    assert_same_patterns(lazy, ref)


def test_history_equals_window_by_window():
    cfg = Config(**CONFIGS["eager"])
    batch = stream(31, 6, max_gap=20)
    lazy = DriftLearner(cfg, track_history=True).learn_many(batch)
    ref = WindowLearner(cfg, track_history=True).learn_many(batch)
    assert len(lazy.history_) == len(ref.history_) > 0
    assert_close(lazy.history_, ref.history_)


def test_cells_whose_values_are_all_one_value_pool_alike():
    # found by the property test: an endpoint whose latency history is one value has a log
    # spread of exactly 0, but its decayed sums left ±1 ulp of it, which decided pooling
    lazy, ref = learn_both(stream(10000, 7, max_gap=150), CONFIGS["fast-decay"], 1)
    assert_same_patterns(lazy, ref)
