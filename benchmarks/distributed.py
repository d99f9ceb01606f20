"""Distributed ``learn`` on Dask against one process: throughput, memory, stage times, equality.

Writes ``--events`` events (default 20,000,000) of parse-bound JSONL traffic into ``--files``
files (default 8: consecutive hours, like rotated logs, ~1% late events, one session id per
client, recurring across files), 1,000 endpoints × 4 personas, then in the same run
learns them

* in one process (``driftbayes.learn``, what ``driftbayes learn FILE...`` does), and
* on a ``LocalCluster`` of 1 and of 2 worker processes (``learn_distributed``, what
  ``driftbayes learn FILE... --workers N`` does),

each in its own child process, and checks that every distributed state gives the patterns of
all layers of the single-process state to 1e-9 relative. Prints a table and writes
``benchmarks/results/distributed.md`` and ``.json``::

    python benchmarks/distributed.py [--events 20000000] [--files 8] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this file's name would shadow the ``distributed`` package for the script and its workers
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
RESULTS = HERE / "results"
ENDPOINTS, PERSONAS, SUCCESSORS = 1000, 4, 4
HOUR = 3600.0
KNOBS = {"update_interval": "10m"}


# ----------------------------------------------------------------------------- traffic
def write_traffic(folder: Path, events: int, files: int, seed: int = 0) -> list[Path]:
    """``files`` JSONL files of one hour each; clients walk a sparse endpoint graph."""
    rng = np.random.default_rng(seed)
    clients = max(events // 100, 1)
    succ = rng.integers(0, ENDPOINTS, (ENDPOINTS, SUCCESSORS))
    med = np.exp(rng.uniform(np.log(5), np.log(500), ENDPOINTS))
    client = rng.integers(0, clients, events)
    ts = 1.7e9 + np.sort(rng.uniform(0, files * HOUR, events))
    # each client's requests follow its own walk over the graph, in time order
    order = np.argsort(client, kind="stable")
    c = client[order]
    first = np.r_[True, c[1:] != c[:-1]]
    step = np.arange(events) - np.maximum.accumulate(np.where(first, np.arange(events), 0))
    ep = np.empty(events, dtype=np.int64)
    cur = rng.integers(0, ENDPOINTS, events)  # a start per request; only step 0 keeps it
    for j in range(int(step.max()) + 1):
        at = np.flatnonzero(step == j)
        if j == 0:
            ep[at] = cur[at]
        else:
            ep[at] = succ[ep[at - 1], rng.integers(0, SUCCESSORS, at.size)]
    endpoint = np.empty(events, dtype=np.int64)
    endpoint[order] = ep
    late = rng.random(events) < 0.01
    ts = np.where(late, ts - rng.uniform(60, 600, events), ts)
    lat = np.round(np.exp(rng.normal(np.log(med[endpoint]), 0.5)), 3)
    status = np.where(rng.random(events) < 0.02, 503, 200)
    ids = rng.integers(1, 100_000, events)
    personas = np.array([f"p{i}" for i in range(PERSONAS)], dtype=object)
    paths = []
    cut = np.searchsorted(np.arange(1, files) * events / files, np.arange(events), "right")
    for k in range(files):
        path = folder / f"traffic-{k:02d}.jsonl"
        sel = np.flatnonzero(cut == k)
        with open(path, "wb") as f:
            for lo in range(0, sel.size, 200_000):
                s = sel[lo:lo + 200_000]
                f.writelines(
                    orjson.dumps({"ts": t, "method": "GET", "path": f"/api/s{e // 50}/r{e}/{i}",
                                  "status": st, "latency_ms": x, "persona": personas[cl % 4],
                                  "session": f"u{cl}"},
                                 option=orjson.OPT_APPEND_NEWLINE)
                    for t, e, i, st, x, cl in zip(ts[s].tolist(), endpoint[s].tolist(),
                                                  ids[s].tolist(), status[s].tolist(),
                                                  lat[s].tolist(), client[s].tolist()))
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- children
def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: since its own start, unlike ru_maxrss,
    which Linux carries over from the parent across fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_single(paths: list[str], state: str) -> dict:
    sys.path.insert(0, str(ROOT))
    import driftbayes as db

    t, cpu = time.perf_counter(), time.process_time()
    learner = db.learn(paths, config=KNOBS)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    db.save(learner, state)
    return {"seconds": seconds, "cpu_s": cpu, "events": learner.n_events_,
            "peak_rss_mb": peak_rss_mb(),
            "windows": learner.n_windows_, "endpoints": len(learner.endpoints_)}


def child_distributed(paths: list[str], state: str, workers: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import driftbayes as db
    from driftbayes.api import as_config
    from driftbayes.distributed import Stages, learn_distributed, local_cluster
    from driftbayes.learner import DriftLearner

    t0 = time.perf_counter()
    with local_cluster(workers, silence_logs=40) as client:
        client.wait_for_workers(workers)
        start = time.perf_counter() - t0
        learner = DriftLearner(as_config(KNOBS))
        stages = Stages()
        cpu0, own = client.run(time.process_time), time.process_time()
        t = time.perf_counter()
        learn_distributed(learner, paths, client, stages=stages)
        seconds = time.perf_counter() - t
        own = time.process_time() - own
        cpu = client.run(time.process_time)
        peaks = client.run(peak_rss_mb)
    db.save(learner, state)
    merged = learner.shard(learner.config, resume=learner)  # an empty shard of the final size
    return {"seconds": seconds, "cluster_start_s": start, "events": learner.n_events_,
            "worker_cpu_s": sorted(cpu[w] - cpu0[w] for w in cpu), "client_cpu_s": own,
            "worker_peak_rss_mb": sorted(peaks.values()),
            "client_peak_rss_mb": peak_rss_mb(),
            "stages": {k: getattr(stages, k) for k in ("plan", "map", "reduce", "scan")},
            "join_s": stages.seconds.get("join", 0.0),
            "partitions": stages.partitions, "groups": stages.groups, "blocks": stages.blocks,
            "scanned_on": len(set(stages.scanned_on)),
            "window_sums_bytes": sum(a.nbytes for a in merged.pending_.arrays.values()
                                     if isinstance(a, np.ndarray)),
            "cells": len(learner.endpoints_) * len(learner.personas_),
            "windows": learner.n_windows_}


def run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", *args], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"child {args[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def same_patterns(a: str, b: str) -> tuple[bool, float]:
    """Whether two states give the same patterns (every layer) to 1e-9 relative; the largest
    relative difference seen."""
    sys.path.insert(0, str(ROOT))
    import driftbayes as db
    from driftbayes.patterns import patterns

    x, y = db.load(a), db.load(b)
    worst = 0.0

    def walk(p, q) -> bool:
        nonlocal worst
        if isinstance(q, dict):
            return p.keys() == q.keys() and all(walk(p[k], q[k]) for k in q)
        if isinstance(q, list | tuple):
            return len(p) == len(q) and all(walk(u, v) for u, v in zip(p, q))
        if isinstance(q, float):
            if math.isnan(q):
                return math.isnan(p)
            worst = max(worst, abs(p - q) / max(abs(q), 1e-300))
            return math.isclose(p, q, rel_tol=1e-9, abs_tol=1e-9)
        return p == q

    ok = all(walk(patterns(x, layer), patterns(y, layer))
             for layer in ("prior", "posterior", "applied"))
    return ok, worst


# ----------------------------------------------------------------------------- report
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", default=str(RESULTS / "distributed"))
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        kind, state, *rest = args.child
        paths = rest[1:] if kind == "distributed" else rest
        res = (child_distributed(paths, state, int(rest[0])) if kind == "distributed"
               else child_single(paths, state))
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory(prefix="driftbayes-dist-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        paths = [str(p) for p in write_traffic(folder, args.events, args.files)]
        mib = sum(os.path.getsize(p) for p in paths) / 2**20
        print(f"wrote {args.events:,} events in {args.files} files ({mib:,.0f} MiB) in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        load = os.getloadavg()[0]
        rows = {"single": run_child("single", str(folder / "single.nc"), *paths)}
        print("single", rows["single"], flush=True)
        for w in [int(x) for x in args.workers.split(",")]:
            rows[w] = run_child("distributed", str(folder / f"w{w}.nc"), str(w), *paths)
            rows[w]["equal"], rows[w]["max_rel_diff"] = same_patterns(
                str(folder / f"w{w}.nc"), str(folder / "single.nc"))
            print(w, rows[w], flush=True)
    write_report(args, rows, mib, load)


def write_report(args, rows: dict, mib: float, load: float) -> None:
    single = rows["single"]
    base = single["events"] / single["seconds"]
    lines = [
        "# Distributed learn: one process vs a LocalCluster",
        "",
        f"Command: `python benchmarks/distributed.py --events {args.events} --files "
        f"{args.files} --workers {args.workers}` · {os.cpu_count()} cores · load average "
        f"{load:.1f} at start · Python {platform.python_version()} · "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{args.events:,} JSONL events in {args.files} files ({mib:,.0f} MiB), "
        f"{ENDPOINTS:,} endpoints × {PERSONAS} personas, {args.files} h of event time in "
        f"{single['windows']} windows of 10 min, a session id per client (sessions span "
        "files), ~1% late events. Times are wall times of learning (the cluster's start-up apart); "
        "memory is each process's peak RSS.",
        "",
        "| run | seconds | events/s | vs one process | peak RSS MiB per worker | client "
        "peak RSS MiB | plan s | map s | reduce s | scan s (join) | partitions | blocks "
        "(workers scanning) | equal to one process |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| one process | {single['seconds']:.1f} | {base:,.0f} | 1.00× | — | "
        f"{single['peak_rss_mb']:,.0f} | | | | | | | — |",
    ]
    clusters = [(f"LocalCluster, {w} worker{'s' if w > 1 else ''}", r)
                for w, r in rows.items() if w != "single"]
    for label, r in clusters:
        st = r["stages"]
        rate = r["events"] / r["seconds"]
        lines.append(
            f"| {label} | {r['seconds']:.1f} | "
            f"{rate:,.0f} | {rate / base:.2f}× | "
            f"{', '.join(f'{x:,.0f}' for x in r['worker_peak_rss_mb'])} | "
            f"{r['client_peak_rss_mb']:,.0f} | {st['plan']:.1f} | {st['map']:.1f} | "
            f"{st['reduce']:.1f} | {st['scan']:.1f} ({r.get('join_s', 0.0):.1f}) | "
            f"{r['partitions']} | {r.get('blocks', 1)} ({r.get('scanned_on', 0)}) | "
            f"{'yes' if r['equal'] else '**no**'} (max rel. diff {r['max_rel_diff']:.1e}) |")
    if "cpu_s" in single:
        lines += [
            "",
            "CPU seconds (all threads of each process; independent of what else runs on the "
            "machine): the work each stage needs, and the wall time it would take with a core "
            "per process (the busiest worker, then the client's join of the scanned blocks).",
            "",
            "| run | CPU s per worker | client CPU s | total CPU s | events per CPU s | "
            "wall time with a core each, s | vs one process with a core |",
            "|---|---|---:|---:|---:|---:|---:|",
            f"| one process | — | {single['cpu_s']:.1f} | {single['cpu_s']:.1f} | "
            f"{single['events'] / single['cpu_s']:,.0f} | {single['cpu_s']:.1f} | 1.00× |",
        ]
        for label, r in clusters:
            total = sum(r["worker_cpu_s"]) + r["client_cpu_s"]
            ideal = max(r["worker_cpu_s"]) + r.get("join_s", 0.0)
            lines.append(
                f"| {label} | "
                f"{', '.join(f'{x:.1f}' for x in r['worker_cpu_s'])} | {r['client_cpu_s']:.1f} "
                f"| {total:.1f} | {r['events'] / total:,.0f} | {ideal:.1f} | "
                f"{single['cpu_s'] / ideal:.2f}× |")
    last = rows[max(k for k in rows if k != "single")]
    per_cell = last["window_sums_bytes"] / max(last["cells"], 1)
    lines += [
        "",
        "Cluster start-up (not counted above): "
        + ", ".join(f"{w} worker(s) {r['cluster_start_s']:.1f} s" for w, r in rows.items()
                    if w != "single") + ".",
        f"One window's per-(cell, window) sums: {per_cell:,.0f} bytes per endpoint × persona "
        f"cell (dense; {per_cell * 1e6 / 2**30:,.2f} GiB per million cells per window held).",
    ]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    Path(args.out + ".json").write_text(json.dumps(
        {"events": args.events, "files": args.files, "mib": mib, "load": load,
         "rows": {str(k): v for k, v in rows.items()}}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
