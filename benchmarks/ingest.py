"""Ingestion speed (parse + learn) for JSONL, HAR and access logs, and peak memory vs file size.

For each format the same synthetic traffic is written to a file, then read and learned by
driftbayes (``read_events`` + ``DriftLearner.learn_many``) and, in the same run, by a plain pandas
baseline (read + per-endpoint groupby, which learns nothing incremental). Each measurement runs
in a fresh subprocess so its peak RSS is its own. Then JSONL is re-run on a file ``--scale``
times larger to show peak memory stays flat (streaming).

Prints a table and writes ``benchmarks/results/ingest.md``::

    python benchmarks/ingest.py [--events 1000000] [--scale 10] [--formats jsonl,har,access-log]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).parent
RESULTS = HERE / "results"


# ----------------------------------------------------------------------------- synthetic files
def _events(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ts = 1.7e9 + np.sort(rng.uniform(0, 86400, n))
    ep = rng.integers(0, 40, n)
    med = np.exp(rng.uniform(np.log(5), np.log(500), 40))
    lat = np.round(np.exp(rng.normal(np.log(med[ep]), 0.5)), 3)
    status = np.where(rng.random(n) < 0.02, 503, 200)
    client = rng.integers(0, max(n // 20, 1), n)
    ids = rng.integers(1, 100_000, n)
    return ts, ep, ids, lat, status, client


def write_jsonl(path: Path, n: int) -> None:
    ts, ep, ids, lat, status, client = _events(n)
    with open(path, "wb") as f:
        for i in range(0, n, 100_000):
            sl = slice(i, min(i + 100_000, n))
            f.writelines(
                orjson.dumps({"ts": t, "method": "GET", "path": f"/api/r{e}/{k}", "status": s,
                              "latency_ms": x, "session": f"c{c}"},
                             option=orjson.OPT_APPEND_NEWLINE)
                for t, e, k, x, s, c in zip(ts[sl].tolist(), ep[sl].tolist(), ids[sl].tolist(),
                                            lat[sl].tolist(), status[sl].tolist(),
                                            client[sl].tolist()))


def write_access_log(path: Path, n: int) -> None:
    ts, ep, ids, lat, status, client = _events(n)
    with open(path, "w") as f:
        for i in range(0, n, 100_000):
            sl = slice(i, min(i + 100_000, n))
            f.writelines(
                f'10.0.{c // 250 % 250}.{c % 250} - - '
                f'[{dt.datetime.fromtimestamp(t, dt.UTC):%d/%b/%Y:%H:%M:%S +0000}] '
                f'"GET /api/r{e}/{k} HTTP/1.1" {s} 512 "-" "bench/1.0" {x / 1000:.3f}\n'
                for t, e, k, x, s, c in zip(ts[sl].tolist(), ep[sl].tolist(), ids[sl].tolist(),
                                            lat[sl].tolist(), status[sl].tolist(),
                                            client[sl].tolist()))


def write_har(path: Path, n: int) -> None:
    ts, ep, ids, lat, status, client = _events(n)
    with open(path, "w") as f:
        f.write('{"log": {"version": "1.2", "creator": {"name": "bench", "version": "1"}, '
                '"pages": [], "entries": [')
        for i in range(n):
            t = dt.datetime.fromtimestamp(ts[i], dt.UTC).isoformat(timespec="milliseconds")
            entry = {
                "startedDateTime": t, "time": float(lat[i]), "pageref": f"page_{client[i]}",
                "request": {"method": "GET", "url": f"https://api.example/api/r{ep[i]}/{ids[i]}",
                            "httpVersion": "HTTP/1.1", "headers": [], "queryString": [],
                            "cookies": [], "headersSize": -1, "bodySize": 0},
                "response": {"status": int(status[i]), "statusText": "", "httpVersion": "HTTP/1.1",
                             "headers": [], "cookies": [], "content": {"size": 0, "mimeType": ""},
                             "redirectURL": "", "headersSize": -1, "bodySize": 0},
                "cache": {}, "timings": {"send": 0, "wait": float(lat[i]), "receive": 0},
            }
            f.write(("," if i else "") + json.dumps(entry))
        f.write("]}}")


WRITERS = {"jsonl": (write_jsonl, ".jsonl"), "har": (write_har, ".har"),
           "access-log": (write_access_log, ".log")}


# ----------------------------------------------------------------------------- measured runs
def run_driftbayes(path: str, fmt: str) -> int:
    from driftbayes.config import Config
    from driftbayes.io.recordings import read_events
    from driftbayes.learner import DriftLearner

    cfg = Config.from_dict({"update_interval": "5m"}, warn=False)
    learner = DriftLearner(cfg)
    n = 0
    for batch in read_events(path, fmt=fmt, config=cfg):
        learner.learn_many(batch)
        n += len(batch)
    learner.snapshot()
    return n


def run_pandas(path: str, fmt: str) -> int:
    import pandas as pd

    if fmt == "jsonl":
        frames = pd.read_json(path, lines=True, chunksize=100_000)
    elif fmt == "access-log":
        names = ["ip", "l", "u", "t", "tz", "req", "status", "bytes", "ref", "ua", "rt"]
        frames = pd.read_csv(path, sep=" ", names=names, chunksize=100_000, quotechar='"')
    else:
        with open(path) as f:
            entries = json.load(f)["log"]["entries"]
        frames = [pd.json_normalize(entries)]
    n = 0
    for f in frames:
        if fmt == "jsonl":
            key, lat, st = f["path"], f["latency_ms"], f["status"]
        elif fmt == "access-log":
            key, lat, st = f["req"].str.split(" ").str[1], f["rt"] * 1000, f["status"]
        else:
            key, lat, st = f["request.url"], f["time"], f["response.status"]
        pd.DataFrame({"k": key, "lat": lat, "err": st >= 500}).groupby("k").agg(
            n=("lat", "size"), lat=("lat", "median"), err=("err", "mean"))
        n += len(f)
    return n


def measure(kind: str, path: Path, fmt: str) -> dict:
    """Run one measurement in a child process: wall time, events and that child's peak RSS."""
    code = (f"import sys, time, json; sys.path.insert(0, {str(HERE)!r}); import ingest; "
            f"t = time.perf_counter(); n = ingest.run_{kind}({str(path)!r}, {fmt!r}); "
            f"print(json.dumps({{'n': n, 's': time.perf_counter() - t}}))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{kind} on {path} failed with exit code {proc.returncode}")
    res = json.loads(out.strip().splitlines()[-1])
    res["rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--formats", default="jsonl,har,access-log")
    ap.add_argument("--tmp", default="/tmp/driftbayes-ingest")
    ap.add_argument("--out", default=str(RESULTS / "ingest.md"))
    args = ap.parse_args()
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    rows = []
    for fmt in args.formats.split(","):
        writer, ext = WRITERS[fmt]
        path = tmp / f"bench-{args.events}{ext}"
        if not path.exists():
            writer(path, args.events)
        t_db = measure("driftbayes", path, fmt)
        t_pd = measure("pandas", path, fmt)
        rows.append((fmt, path.stat().st_size / 2**20, t_db, t_pd))
        print(f"{fmt}: driftbayes {t_db['n'] / t_db['s']:,.0f} ev/s, "
              f"pandas {t_pd['n'] / t_pd['s']:,.0f} ev/s", flush=True)
    mem = []
    if args.scale > 1 and "jsonl" in args.formats:
        small = tmp / f"bench-{args.events}.jsonl"
        big = tmp / f"bench-{args.events * args.scale}.jsonl"
        if not big.exists():
            write_jsonl(big, args.events * args.scale)
        mem = [(n, p.stat().st_size / 2**20, measure("driftbayes", p, "jsonl"))
               for n, p in ((args.events, small), (args.events * args.scale, big))]
    lines = [
        f"# Ingestion: parse + learn, {args.events:,} events per format",
        "",
        f"Command: `python benchmarks/ingest.py --events {args.events} --scale {args.scale} "
        f"--formats {args.formats}` · {os.cpu_count()} cores · "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d}",
        "",
        "| format | file MiB | driftbayes s | driftbayes events/s | driftbayes peak RSS MiB | "
        "pandas baseline s | pandas events/s | pandas peak RSS MiB | driftbayes / pandas speed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt, size, a, b in rows:
        lines.append(f"| {fmt} | {size:,.0f} | {a['s']:.1f} | {a['n'] / a['s']:,.0f} | "
                     f"{a['rss_mb']:,.0f} | {b['s']:.1f} | {b['n'] / b['s']:,.0f} | "
                     f"{b['rss_mb']:,.0f} | {b['s'] / a['s']:.2f}× |")
    if mem:
        lines += ["", "Peak memory of `driftbayes` learning JSONL (streaming):", "",
                  "| events | file MiB | seconds | events/s | peak RSS MiB |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {n:,} | {size:,.0f} | {r['s']:.1f} | {r['n'] / r['s']:,.0f} "
                  f"| {r['rss_mb']:,.0f} |" for n, size, r in mem]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
