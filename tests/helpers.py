"""Seeded synthetic traffic for tests, and where the tests find the real recordings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from driftbayes.events import EventBatch


def traffic(
    n: int,
    *,
    seed: int = 0,
    t0: float = 0.0,
    span_s: float = 3600.0,
    endpoints=("/api/users/{id}", "/api/orders/{id}", "/api/cart"),
    personas=("premium", "regular"),
    median_ms: float = 120.0,
    sigma: float = 0.5,
    error_rate: float = 0.05,
    n_sessions: int = 50,
) -> EventBatch:
    """``n`` time-ordered events with log-normal latency, a 200/500 mix and sessions."""
    rng = np.random.default_rng(seed)
    ts = t0 + np.sort(rng.uniform(0, span_s, n))
    session = rng.integers(0, n_sessions, n)
    return EventBatch(
        ts=ts,
        method=np.full(n, "GET", dtype=object),
        endpoint=np.asarray(endpoints, dtype=object)[rng.integers(0, len(endpoints), n)],
        status=np.where(rng.random(n) < error_rate, 500, 200),
        latency_ms=np.exp(rng.normal(np.log(median_ms), sigma, n)),
        persona=np.asarray(personas, dtype=object)[session % len(personas)],
        session=np.array([f"s{seed}-{s}" for s in session], dtype=object),
        line=np.arange(1, n + 1),
    )


def concat(*batches: EventBatch) -> EventBatch:
    return EventBatch.concat(list(batches))


# --------------------------------------------------------------------------- real recordings

#: Redistributable real recordings shipped with the tests (same layout as shared/data/real).
SHIPPED_REAL = Path(__file__).parent / "data" / "real"


def real_root() -> Path | None:
    """The team's real recordings (``DRIFTBAYES_DATA`` or ``shared/data/real`` above), or None."""
    from driftbayes.io.recordings import data_root

    try:
        root = data_root()
    except FileNotFoundError:
        return None
    return root if root.is_dir() else None


def missing_reason(recording: str, rel: str) -> str:
    """Skip reason naming the recording that is not here and how to point at it."""
    return (f"needs the real recording {recording!r} ({rel}), which is not in the repository: "
            "set DRIFTBAYES_DATA=/path/to/data/real (or have shared/data/real beside the clone)")


def real_path(rel: str) -> Path | None:
    """``rel`` under the real recordings, else under :data:`SHIPPED_REAL`, else None."""
    root = real_root()
    for base in (root, SHIPPED_REAL):
        if base is not None and (base / rel).exists():
            return base / rel
    return None


def needs_real(rel: str, recording: str) -> pytest.MarkDecorator:
    """Mark: skip unless ``rel`` (relative to ``data/real``) is found by :func:`real_path`."""
    return pytest.mark.skipif(real_path(rel) is None, reason=missing_reason(recording, rel))


def real_file(rel: str, recording: str) -> Path:
    """Path of ``rel`` (see :func:`real_path`), or skip the test naming ``recording``."""
    path = real_path(rel)
    if path is None:
        pytest.skip(missing_reason(recording, rel))
    return path


def use_recording(name: str, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Make the registered recording ``name`` readable by name, or skip naming it.

    The team's copy wins; otherwise a shipped copy under :data:`SHIPPED_REAL` is used by
    pointing ``DRIFTBAYES_DATA`` at it. Returns the recording's files.
    """
    from driftbayes.io.recordings import RECORDINGS

    rec = RECORDINGS[name]
    for base in (real_root(), SHIPPED_REAL):
        if base is None:
            continue
        monkeypatch.setenv("DRIFTBAYES_DATA", str(base))
        files = rec.files()
        if files and all(f.exists() for f in files):
            return files
    monkeypatch.delenv("DRIFTBAYES_DATA", raising=False)
    pytest.skip(missing_reason(name, rec.path))


def learn_in_time_order(config, *batches):
    """A learner that saw the batches' events merged in time order."""
    from driftbayes.learner import DriftLearner

    b = concat(*batches)
    return DriftLearner(config).learn_many(b.take(np.argsort(b.ts, kind="stable")))


ROOT = Path(__file__).resolve().parents[1]

#: Seconds one request to a test server may take. Generous: on a loaded 2-core machine (two test
#: processes beside other work) a request that loads or saves a state outlasts httpx's 5 s
#: default; the tests assert behaviour, never speed.
LOADED = 120.0


def child_env() -> dict[str, str]:
    """Environment for a child Python process that imports this checkout's driftbayes (with
    user-facing errors: no ``DRIFTBAYES_DEBUG`` tracebacks)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DRIFTBAYES_DEBUG", None)
    return env


def hold_state_lock(state: Path) -> subprocess.Popen:
    """A child process that takes the state's lock, says so, and holds it until stdin closes."""
    code = textwrap.dedent(f"""
        import sys
        from driftbayes.statefile import state_lock
        with state_lock({str(state)!r}, 0):
            print("locked", flush=True)
            sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=child_env())
    assert proc.stdout.readline().strip() == "locked"
    return proc


def dense(x):
    """A statistic as a dense array (sparse transition counts become ``(P, E+1, E+1)``)."""
    return x.to_dense() if hasattr(x, "to_dense") else x


def cart_learner():
    """A learner on 3,000 synthetic events, for the ArviZ tests of both generations."""
    from driftbayes.config import Config
    from driftbayes.learner import DriftLearner

    return DriftLearner(Config()).learn_many(traffic(3000, seed=18))


def cart_error_beta(learner):
    """The exact Beta posterior of ``/api/cart`` × premium's 5xx share."""
    from scipy import stats

    snap = learner.snapshot()
    e, p = snap.resolve_endpoint("/api/cart"), snap.resolve_persona("premium")
    alpha = snap.layer("posterior")["errors"].alpha[e, p]
    codes = np.asarray(snap.statuses_)
    return stats.beta(alpha[codes >= 500].sum(), alpha[codes < 500].sum())
