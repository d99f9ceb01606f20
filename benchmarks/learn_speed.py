"""How fast driftbayes learns: 1 M events, core learner and end-to-end JSONL, against pandas.

Prints a table and writes ``benchmarks/results/learn_speed.md``. Speed is reported as events/s
and as a ratio against a baseline measured in the same run (this machine is shared and noisy):
a plain ``pandas.read_json(lines=True)`` + per-endpoint ``groupby`` of latency/status, which
learns nothing incremental, has no decay, gates, sessions or windows.

Usage::

    python benchmarks/learn_speed.py [--events 1000000] [--endpoints 50] [--personas 4]
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

import numpy as np
import orjson

from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.io.jsonl import read_jsonl
from driftbayes.learner import DriftLearner

RESULTS = Path(__file__).parent / "results"


def synthetic_events(n: int, *, endpoints: int, personas: int, span_s: float, seed: int = 0):
    """Columnar events: log-normal latency per endpoint, 2% 5xx, sessions of ~10 requests."""
    rng = np.random.default_rng(seed)
    ts = 1.7e9 + np.sort(rng.uniform(0, span_s, n))
    ep = rng.integers(0, endpoints, n)
    med = np.exp(rng.uniform(np.log(5), np.log(500), endpoints))
    session = rng.integers(0, max(n // 10, 1), n)
    return {
        "ts": ts,
        "method": np.full(n, "GET", dtype=object),
        "path": np.array([f"/api/r{e}/{i}" for e, i in zip(ep, rng.integers(1, 10_000, n))],
                         dtype=object),
        "endpoint": np.array([f"/api/r{e}/{{id}}" for e in range(endpoints)], dtype=object)[ep],
        "status": np.where(rng.random(n) < 0.02, 503, 200),
        "latency_ms": np.round(np.exp(rng.normal(np.log(med[ep]), 0.5)), 3),
        "persona": np.array([f"p{i}" for i in range(personas)], dtype=object)[session % personas],
        "session": np.array([f"s{s}" for s in session], dtype=object),
    }


def write_jsonl(cols: dict, path: Path) -> None:
    keys = ["ts", "method", "path", "status", "latency_ms", "persona", "session"]
    with gzip.open(path, "wb", compresslevel=1) if path.suffix == ".gz" else open(path, "wb") as f:
        rows = zip(*(cols[k].tolist() for k in keys))
        f.writelines(orjson.dumps(dict(zip(keys, r)), option=orjson.OPT_APPEND_NEWLINE)
                     for r in rows)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--endpoints", type=int, default=50)
    ap.add_argument("--personas", type=int, default=4)
    ap.add_argument("--span-hours", type=float, default=24.0)
    ap.add_argument("--update-interval", default="5m")
    ap.add_argument("--tmp", default="/tmp/driftbayes-bench")
    ap.add_argument("--out", default=str(RESULTS / "learn_speed.md"))
    args = ap.parse_args()
    n = args.events
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    cols = synthetic_events(n, endpoints=args.endpoints, personas=args.personas,
                            span_s=args.span_hours * 3600)
    jsonl = tmp / f"events-{n}.jsonl"
    if not jsonl.exists():
        write_jsonl(cols, jsonl)
    cfg = Config.from_dict({"update_interval": args.update_interval}, warn=False)
    batch = EventBatch(**{k: cols[k] for k in ("ts", "method", "endpoint", "status", "latency_ms",
                                               "persona", "session")}, line=np.arange(n))

    def core():
        lrn = DriftLearner(cfg)
        for i in range(0, n, 65_536):
            lrn.learn_many(batch.take(np.arange(i, min(i + 65_536, n))))
        lrn.snapshot()

    def parse_only():
        for _ in read_jsonl(jsonl):
            pass

    def end_to_end():
        lrn = DriftLearner(cfg)
        for b in read_jsonl(jsonl):
            lrn.learn_many(b)
        lrn.snapshot()

    def pandas_baseline():
        import pandas as pd

        frames = pd.read_json(jsonl, lines=True, chunksize=65_536)
        parts = [f.assign(err=f["status"] >= 500)
                 .groupby(["path", "persona"])
                 .agg(n=("latency_ms", "size"), lat=("latency_ms", "median"), err=("err", "mean"))
                 for f in frames]
        pd.concat(parts)

    rows = []
    base = timed(pandas_baseline)
    for name, fn in [("core learner (in-memory batches)", core),
                     ("JSONL parse only", parse_only),
                     ("JSONL parse + learn (end to end)", end_to_end)]:
        t = timed(fn)
        rows.append((name, t, n / t, base / t))
    rows.append(("baseline: pandas read_json + groupby", base, n / base, 1.0))
    windows = int(np.ceil(args.span_hours * 3600 / cfg.update_interval))
    lines = [
        f"# Learning speed — {n:,} events, {args.endpoints} endpoints × {args.personas} personas, "
        f"{args.span_hours:g} h of event time in {windows} windows of {args.update_interval}",
        "",
        f"Command: `python benchmarks/learn_speed.py --events {n} --endpoints {args.endpoints} "
        f"--personas {args.personas} --span-hours {args.span_hours:g} "
        f"--update-interval {args.update_interval}` · machine: {os.cpu_count()} cores",
        "",
        "| step | seconds | events/s | speed vs pandas baseline |",
        "|---|---:|---:|---:|",
    ] + [f"| {r[0]} | {r[1]:.2f} | {r[2]:,.0f} | {r[3]:.2f}× |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
