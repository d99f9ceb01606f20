"""Shared pieces of the export tests: a learned state, real runtimes from npm, a load probe.

Tolerances. ``n`` requests to a route whose served latency has CDF ``F``: the count of
latencies ≤ ``x_q`` (the exported ``q``-quantile) is Binomial(n, q), so the empirical CDF at
``x_q`` is within ``4·sqrt(q(1-q)/n)`` of ``q`` except with probability ~6e-5. A runtime adds
its own overhead (loopback, parsing, JIT) to every delay; it is measured in the same run on a
route without delay and the exported quantile is shifted by the overhead's median and widened
by its spread (:func:`check_quantile`). A status share with exported probability ``p`` is
within ``4·sqrt(p(1-p)/n)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from driftbayes.config import Config
from driftbayes.learner import DriftLearner

NPM_CACHE = Path(os.environ.get("DRIFTBAYES_NPM_CACHE",
                                Path.home() / ".cache" / "driftbayes-tests" / "npm"))


@pytest.fixture(scope="session")
def learned() -> DriftLearner:
    """The steady shop scenario, 4 h: 6 endpoints × 3 personas (web, mobile, partner)."""
    from driftbayes.bench.suite import scenario_stream

    stream = scenario_stream("steady", hours=4)
    cfg = Config.from_dict({"update_interval": 300, "sensitivity": 1.0}, warn=False)
    return DriftLearner(cfg).learn_many(stream.events)


@pytest.fixture(scope="session")
def model(learned):
    from driftbayes.export.model import export_model

    return export_model(learned)


def npm_package(package: str, version: str) -> Path:
    """``node_modules`` folder with ``package@version`` installed (cached across runs);
    skips the test when npm is absent."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node not installed: the real runtime cannot be started")
    prefix = NPM_CACHE / f"{package.replace('/', '_')}@{version}"
    modules = prefix / "node_modules"
    if not (modules / package / "package.json").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "--loglevel=error", f"{package}@{version}"], check=True, timeout=600)
    return modules


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers (any status); fail with the process output if it died."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"runtime exited with {proc.returncode}: {out}")
        try:
            httpx.get(url, timeout=1.0, trust_env=False)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered at {url} within {timeout} s")


@contextlib.contextmanager
def running(cmd: list[str], health_url: str, *, cwd=None, env=None, timeout: float = 90.0):
    """Start a runtime process, wait for ``health_url``, stop it (and its children) after."""
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        wait_http(health_url, timeout, proc)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)


def hammer(url: str, n: int, *, method: str = "GET", headers: dict | None = None,
           concurrency: int = 50, timeout: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Send ``n`` requests (``concurrency`` at a time) → (latency ms, status) arrays."""
    import httpx

    async def run():
        lat = np.empty(n)
        status = np.empty(n, dtype=np.int64)
        sem = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
            async def one(i):
                async with sem:
                    t0 = time.perf_counter()
                    r = await client.request(method, url, headers=headers)
                    await r.aread()
                    lat[i] = (time.perf_counter() - t0) * 1000.0
                    status[i] = r.status_code
            await asyncio.gather(*(one(i) for i in range(n)))
        return lat, status

    return asyncio.run(run())


def check_quantile(latency_ms: np.ndarray, x_q: float, q: float,
                   overhead_ms: np.ndarray | None = None) -> None:
    """The empirical CDF at the exported quantile ``x_q`` (shifted by the runtime's median
    overhead) is within 4 binomial SE of ``q``; the overhead's own spread (its 10–90% range)
    widens the bracket on the latency scale."""
    n = len(latency_ms)
    se = np.sqrt(q * (1 - q) / n)
    shift = spread_lo = spread_hi = 0.0
    if overhead_ms is not None and len(overhead_ms):
        shift = float(np.median(overhead_ms))
        spread_lo = shift - float(np.quantile(overhead_ms, 0.1))
        spread_hi = float(np.quantile(overhead_ms, 0.9)) - shift
    upper = float(np.mean(latency_ms <= x_q + shift + spread_hi))
    lower = float(np.mean(latency_ms <= x_q + shift - spread_lo))
    assert lower - 4 * se <= q <= upper + 4 * se, (
        f"q={q}: exported {x_q:.1f} ms (+{shift:.1f} overhead): observed CDF there in "
        f"[{lower:.3f}, {upper:.3f}] ± {4 * se:.3f}; observed quantile "
        f"{np.quantile(latency_ms, q):.1f} ms")


def check_share(statuses: np.ndarray, code: int, p: float) -> None:
    n = len(statuses)
    observed = float(np.mean(statuses == code))
    se = np.sqrt(max(p * (1 - p), 1e-12) / n)
    assert abs(observed - p) <= 4 * se + 1e-12, (code, observed, p, se)
