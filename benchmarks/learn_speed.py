"""How fast driftbayes learns: the core-learner table and the sparse-core targets, in one command.

Section 1 (``table``): 1 M events through the core learner and end-to-end JSONL, as events/s and
as a ratio against a plain ``pandas.read_json(lines=True)`` + ``groupby`` baseline measured in the
same run (the machine is shared and noisy; the baseline learns nothing incremental).

Section 2 (the sparse learner core's targets), one function per row, each measurement in its
own child process so its wall time and peak RSS (``wait4`` rusage) are its own:

``nasa``        ``driftbayes learn nasa`` (before: the window-by-window reference learner in
                ``tests/reference``, capped at ``--before-cap`` seconds);
``scale``       300 k events, 24 h at 60-s windows: 5,000 endpoints vs 20 (the ratio is the
                measure);
``rss``         50,000 endpoints x 4 personas, 1 M events: peak RSS (generating the data alone
                is the baseline);
``reads``       ``patterns``, ``serve`` start-up (launch until ``/__driftbayes/health`` answers) and
                ``export --to locust`` on a 5,000-endpoint state, against a 20-endpoint state;
``far-future``  one event at ``ts = 1e12`` s after a learned state vs one next-window event
                (learner API), plus what the JSONL reader makes of far-future timestamps;
``ingest``      ``benchmarks/ingest.py``'s 1 M-event JSONL, new learner vs reference learner.

``--scale`` multiplies every event count (``--scale 0.01`` for a quick run); ``--span-hours``
sets the event time of section 1 and of the scale, rss and far-future rows (24 h; fewer hours
are fewer windows to learn); ``--only`` picks sections. Prints the tables and writes
``benchmarks/results/learn_speed.md``::

    python benchmarks/learn_speed.py [--only table,nasa,scale,rss,reads,far-future,ingest]
        [--scale 1] [--span-hours 24] [--before-cap 180] [--no-before]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.io.jsonl import read_jsonl
from driftbayes.learner import DriftLearner

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


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


SECTIONS = ("table", "nasa", "scale", "rss", "reads", "far-future", "ingest")
NASA_EVENTS = 30_969
FAR_TS = 1e12
DAY = 86_400.0
#: Address-space cap (GiB) of every child (``--mem-cap-gb``): a runaway measurement fails with
#: MemoryError instead of swapping the shared machine.
MEM_CAP_GB: list[float | None] = [None]
CLI = "import sys; from driftbayes.cli import app; sys.argv[0] = 'driftbayes'; sys.exit(app())"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ----------------------------------------------------------------------------- child processes
def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_proc(argv: list[str], *, timeout: float, mem_gb: float | None = None,
             cwd: str | None = None) -> dict:
    """Run ``argv``; wall seconds, that child's peak RSS (MiB), exit code, whether it timed out.

    The last stdout line is parsed as JSON into ``out`` when it is JSON. A run past ``timeout``
    is killed (its process group) and reported with ``timed_out``; ``mem_gb`` caps its address
    space so a runaway "before" measurement fails instead of swapping the shared machine.
    """
    mem_gb = mem_gb or MEM_CAP_GB[0]

    def limit():
        if mem_gb:
            cap = int(mem_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    t0 = time.perf_counter()
    proc = _Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), cwd=cwd,
                  start_new_session=True, preexec_fn=limit)
    try:
        out, errs = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, errs = proc.communicate()
        timed_out = True
    secs = time.perf_counter() - t0
    rss = getattr(proc, "_bench_rss", None)
    res = {"s": secs, "rc": proc.returncode, "timed_out": timed_out, "rss_mb": rss,
           "stderr": errs.decode(errors="replace")[-2000:]}
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        res["out"] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        res["out"] = {}
    return res


class _Popen(subprocess.Popen):
    """Popen whose reaping records the child's own peak RSS (wait4 rusage, KiB on Linux)."""

    def _try_wait(self, wait_flags):
        try:
            pid, sts, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return self.pid, 0
        if pid:
            self._bench_rss = usage.ru_maxrss / 1024
        return pid, sts


def run_child(fn: str, *, timeout: float = 3600, mem_gb: float | None = None, **kw) -> dict:
    """Run ``fn(**kw)`` of this module in a fresh interpreter (see :func:`run_proc`)."""
    code = (f"import sys, json; sys.path[:0] = [{str(HERE)!r}, {str(ROOT)!r}]; "
            f"import learn_speed as ls; print(json.dumps(ls.{fn}(**json.loads(sys.argv[1]))))")
    res = run_proc([sys.executable, "-c", code, json.dumps(kw)], timeout=timeout, mem_gb=mem_gb)
    if res["rc"] and not res["timed_out"]:
        res["error"] = (res["stderr"].strip().splitlines() or ["?"])[-1]
    return res


def run_cli(*args: str, timeout: float = 3600, cwd: str | None = None) -> dict:
    res = run_proc([sys.executable, "-c", CLI, *args], timeout=timeout, cwd=cwd)
    if res["rc"] and not res["timed_out"]:
        res["error"] = (res["stderr"].strip().splitlines() or ["?"])[-1]
    if res["timed_out"]:
        res["s"] = None
    return res


def _learner_cls(which: str):
    if which == "reference":
        from tests.reference.window_learner import DriftLearner as Ref
        return Ref
    return DriftLearner


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- functions run inside a child (return JSON-able dicts)
def learn_synthetic(*, events: int, endpoints: int, personas: int = 4, span_s: float = DAY,
                    interval: str = "60s", learner: str = "new", save: str | None = None,
                    learn: bool = True) -> dict:
    """Generate synthetic traffic and learn it in 65,536-event batches (timed: learning only)."""
    cols = synthetic_events(events, endpoints=endpoints, personas=personas, span_s=span_s)
    batch = EventBatch(**{k: cols[k] for k in ("ts", "method", "endpoint", "status", "latency_ms",
                                               "persona", "session")}, line=np.arange(events))
    del cols
    res = {"n": events, "last_ts": float(batch.ts[-1]), "rss_data_mb": _rss_now_mb()}
    if not learn:
        return res
    cfg = Config.from_dict({"update_interval": interval}, warn=False)
    t = time.perf_counter()
    lrn = _learner_cls(learner)(cfg)
    for i in range(0, events, 65_536):
        lrn.learn_many(batch.take(np.arange(i, min(i + 65_536, events))))
    lrn.snapshot()
    res["learn_s"] = time.perf_counter() - t
    if save:
        from driftbayes.state import save_state
        save_state(lrn, save)
    return res


def learn_file(*, path: str, learner: str = "new", interval: str | None = None,
               limit: int | None = None) -> dict:
    """``read_events`` + ``learn_many`` + ``snapshot`` over a file or named recording."""
    from driftbayes.io.recordings import read_events

    cfg = Config.from_dict({"update_interval": interval}, warn=False) if interval else None
    t = time.perf_counter()
    lrn = _learner_cls(learner)(cfg)
    n = 0
    for b in read_events(path, config=lrn.config):
        if limit is not None and n + len(b) > limit:
            b = b.take(np.arange(limit - n))
        lrn.learn_many(b)
        n += len(b)
        if limit is not None and n >= limit:
            break
    lrn.snapshot()
    return {"n": n, "learn_s": time.perf_counter() - t}


def one_event(*, ts: float, state: str | None = None, learner: str = "new",
              events: int = 0, endpoints: int = 50) -> dict:
    """Learn one event at ``ts`` into a learned state, then read every pattern; time and RSS.

    The state is ``state`` (loaded with ``load_state``) or, for the reference learner, which
    has no state file of this schema, ``events`` synthetic events learned first.
    """
    if learner == "reference":  # the reference reads its dense statistics its own way
        from tests.reference.patterns import patterns
    else:
        from driftbayes.patterns import patterns

    if state:
        from driftbayes.state import load_state
        lrn = load_state(state)
    else:
        cols = synthetic_events(events, endpoints=endpoints, personas=4, span_s=3600)
        batch = EventBatch(**{k: cols[k] for k in ("ts", "method", "endpoint", "status",
                                                   "latency_ms", "persona", "session")},
                           line=np.arange(events))
        lrn = _learner_cls(learner)(Config.from_dict({"update_interval": "60s"}, warn=False))
        lrn.learn_many(batch)
    patterns(lrn.snapshot())
    before = _rss_now_mb()
    ev = EventBatch(ts=np.array([ts]), method=np.array(["GET"], dtype=object),
                    endpoint=np.array(["/api/r1/{id}"], dtype=object), status=np.array([200]),
                    latency_ms=np.array([12.0]), persona=np.array(["p1"], dtype=object),
                    session=np.array(["far"], dtype=object), line=np.array([1]))
    t = time.perf_counter()
    lrn.learn_many(ev)
    snap = lrn.snapshot()
    t_learn = time.perf_counter() - t
    t = time.perf_counter()
    recs = patterns(snap)
    t_read = time.perf_counter() - t
    return {"learn_s": t_learn, "read_s": t_read, "patterns": len(recs),
            "rss_delta_mb": _rss_now_mb() - before}


def reader_far_future(*, tmp: str) -> dict:
    """What the JSONL reader makes of far-future timestamps (bad-record policy)."""
    from driftbayes.events import BadRecordReport
    from driftbayes.io.recordings import read_events

    out = {}
    for label, ts in (("1e12", FAR_TS), ("9.9e10", 9.9e10), ("9999-12-31T00:00:00Z",
                                                           "9999-12-31T00:00:00Z")):
        path = Path(tmp) / "far-future.jsonl"
        path.write_bytes(orjson.dumps({"ts": ts, "method": "GET", "path": "/api/r1/7",
                                       "status": 200, "latency_ms": 12.0}) + b"\n")
        report = BadRecordReport()
        try:
            kept = [t for b in read_events(path, report=report) for t in b.ts.tolist()]
            out[label] = (f"kept as ts={kept[0]:.6g} s" if kept else "rejected") + (
                f", {report.count} bad" if report.count else "")
        except Exception as exc:  # noqa: BLE001 - what the reader does is the finding
            out[label] = f"raises {type(exc).__name__}"
    return out


# ----------------------------------------------------------------------------- section 1
def section_table(args, n: int, tmp: Path) -> list[str]:
    endpoints, personas = args.endpoints, args.personas
    cols = synthetic_events(n, endpoints=endpoints, personas=personas,
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
    return [
        f"## 1. Learning speed — {n:,} events, {endpoints} endpoints × {personas} personas, "
        f"{args.span_hours:g} h of event time in {windows} windows of {args.update_interval}",
        "",
        "| step | seconds | events/s | speed vs pandas baseline |",
        "|---|---:|---:|---:|",
    ] + [f"| {r[0]} | {r[1]:.2f} | {r[2]:,.0f} | {r[3]:.2f}× |" for r in rows]


# ----------------------------------------------------------------------------- section 2
class Report:
    """Rows of the targets table plus every raw measurement behind them."""

    def __init__(self):
        self.rows: list[tuple[str, ...]] = []
        self.raw: list[tuple[str, float | None, float | None, str]] = []
        self.notes: list[str] = []

    def measure(self, name: str, res: dict, seconds: float | None = None, note: str = "") -> dict:
        secs = res.get("s") if seconds is None else seconds
        if res.get("timed_out"):
            note = (note + "; " if note else "") + "killed at the time cap"
        elif res.get("error"):
            note = (note + "; " if note else "") + f"failed: {res['error'][:120]}"
        self.raw.append((name, secs, res.get("rss_mb"), note))
        print(f"  {name}: {_fmt_s(secs)} s, peak RSS {_fmt_mb(res.get('rss_mb'))} MiB {note}",
              flush=True)
        return res

    def row(self, measure: str, before: str, now: str, ratio: str, target: str, met: str,
            detail: str = "") -> None:
        self.rows.append((measure, before, now, ratio, target, met, detail))
        print(f"| {' | '.join(self.rows[-1])} |", flush=True)


def _fmt_s(x) -> str:
    return "—" if x is None else f"{x:.3g}" if x < 1 else f"{x:,.3f}" if x < 10 else f"{x:,.1f}"


def _fmt_mb(x) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _before(res: dict, cap: float) -> str:
    if res.get("timed_out"):
        return f"> {cap:g} s"
    if "MemoryError" in res.get("error", ""):
        return f"out of memory (> {MEM_CAP_GB[0]:g} GiB cap)"
    if res.get("error"):
        return f"failed ({res['error'][:60]})"
    return f"{res['out'].get('learn_s', res['s']):,.1f} s"


def _ok(flag: bool) -> str:
    return "yes" if flag else "**no**"


def row_nasa(rep: Report, args, tmp: Path) -> None:
    limit = None if args.scale >= 1 else max(int(NASA_EVENTS * args.scale), 100)
    if limit is None:
        res = rep.measure("nasa: `driftbayes learn nasa` (new learner, CLI, saves state)",
                          run_cli("learn", "nasa", "--state", str(tmp / "nasa.nc"),
                                  "--no-progress"))
        now = res["s"]
    else:
        res = rep.measure(f"nasa: first {limit:,} events, read_events + learn_many (new)",
                          run_child("learn_file", path="nasa", limit=limit))
        if res.get("error"):
            rep.row("`driftbayes learn nasa`", "109 s", "skipped", "—", "≤ 5 s", "—",
                    f"NASA recording unavailable: {res['error'][:80]}")
            return
        now = res["s"]
    before = "109 s (before the sparse core)"
    ratio = "—"
    if args.before:
        ref = rep.measure("nasa: reference (window-by-window) learner, read_events + learn_many",
                          run_child("learn_file", path="nasa", learner="reference", limit=limit,
                                    timeout=args.before_cap, mem_gb=None))
        before = f"109 s (before the sparse core); this run {_before(ref, args.before_cap)}"
        if not ref.get("timed_out") and not ref.get("error"):
            ratio = f"{ref['s'] / now:.1f}× faster"
        elif ref.get("timed_out"):
            ratio = f"> {args.before_cap / now:.1f}× faster"
    what = "`driftbayes learn nasa` (1,738 endpoints, 772 windows)" if limit is None else (
        f"NASA, first {limit:,} events (--scale {args.scale:g})")
    rep.row(what, before, f"{now:.1f} s", ratio, "≤ 5 s", _ok(now <= 5) if limit is None else "—",
            f"peak RSS {_fmt_mb(res.get('rss_mb'))} MiB; wall time of the whole child "
            "(interpreter start, read, learn, save)")


def row_scale(rep: Report, args, tmp: Path) -> None:
    n = max(int(300_000 * args.scale), 1_000)
    common = {"events": n, "personas": 4, "span_s": args.span_hours * 3600, "interval": "60s"}
    windows = f"{round(args.span_hours * 60):,} windows"
    small = rep.measure(f"scale: {n:,} events, 20 endpoints, {windows} (new)",
                        run_child("learn_synthetic", endpoints=20, **common,
                                  timeout=args.new_cap))
    wide = args.wide_endpoints
    big = rep.measure(f"scale: {n:,} events, {wide:,} endpoints, {windows} (new)",
                      run_child("learn_synthetic", endpoints=wide, **common,
                                timeout=args.new_cap))
    if big.get("timed_out") or big.get("error"):
        # the cap also covers start-up and data generation: take the 20-endpoint run's share off
        bound = (args.new_cap - (small["s"] - small["out"]["learn_s"])) / small["out"]["learn_s"]
        rep.row(f"{n:,} events, {args.span_hours:g} h at 60-s windows, {wide:,} endpoints vs 20",
                _scale_before(rep, args, common, wide), f"> {bound:.0f}×", f"> {bound:.0f}×",
                "≤ 2×", "**no**", f"{wide:,}-endpoint learner killed at --new-cap "
                f"{args.new_cap:g} s vs {small['out']['learn_s']:.1f} s for 20 endpoints")
        return
    ratio = big["out"]["learn_s"] / small["out"]["learn_s"]
    rep.row(f"{n:,} events, {args.span_hours:g} h at 60-s windows, {wide:,} endpoints vs 20",
            _scale_before(rep, args, common, wide), f"{ratio:.2f}×", f"{ratio:.2f}×", "≤ 2×",
            _ok(ratio <= 2),
            f"learn time {big['out']['learn_s']:.2f} s vs {small['out']['learn_s']:.2f} s "
            f"(data generation excluded); peak RSS {_fmt_mb(big['rss_mb'])} vs "
            f"{_fmt_mb(small['rss_mb'])} MiB")


def _scale_before(rep: Report, args, common: dict, wide: int) -> str:
    before = "—"
    if args.before:
        r20 = rep.measure("scale: 20 endpoints, reference learner",
                          run_child("learn_synthetic", endpoints=20, learner="reference", **common,
                                    timeout=args.before_cap, mem_gb=None))
        r5k = rep.measure(f"scale: {wide:,} endpoints, reference learner",
                          run_child("learn_synthetic", endpoints=wide, learner="reference",
                                    **common, timeout=args.before_cap,
                                    mem_gb=None))
        ok20 = not (r20.get("timed_out") or r20.get("error"))
        ok5k = not (r5k.get("timed_out") or r5k.get("error"))
        if ok20 and ok5k:
            before = f"{r5k['out']['learn_s'] / r20['out']['learn_s']:.1f}×"
        elif ok20 and r5k.get("timed_out"):
            before = f"> {args.before_cap / r20['out']['learn_s']:.0f}×"
        else:
            before = "n/a"
        before += f" ({_before(r5k, args.before_cap)} vs {_before(r20, args.before_cap)})"
    return before


def row_rss(rep: Report, args, tmp: Path) -> None:
    n = max(int(1_000_000 * args.scale), 1_000)
    E = args.rss_endpoints
    common = {"events": n, "endpoints": E, "personas": 4, "span_s": args.span_hours * 3600,
              "interval": "60s"}
    data = rep.measure(f"rss: generate {n:,} events, {E:,} endpoints (no learning: baseline)",
                       run_child("learn_synthetic", learn=False, **common))
    full = rep.measure(f"rss: {n:,} events, {E:,} endpoints × 4 personas, learn (new)",
                       run_child("learn_synthetic", **common))
    dense_gb = 4 * (E + 1)**2 * 8 / 2**30
    if full.get("error") or full.get("timed_out"):
        rep.row(f"{E:,} endpoints × 4 personas, {n:,} events", f"infeasible: dense "
                f"(P, E+1, E+1) transitions alone {dense_gb:.0f} GiB per array (computed, not run)",
                f"> {MEM_CAP_GB[0]:g} GiB" if "MemoryError" in full.get("error", "") else "failed",
                "—", "peak RSS ≤ 2 GB", "**no**",
                f"child failed under the {MEM_CAP_GB[0]:g} GiB address-space cap: "
                f"{full.get('error', 'timed out')[:100]}; peak RSS seen "
                f"{_fmt_mb(full['rss_mb'])} MiB")
        return
    peak = full["rss_mb"]
    rep.row(f"{E:,} endpoints × 4 personas, {n:,} events", f"infeasible: dense (P, E+1, E+1) "
            f"transitions alone {dense_gb:.0f} GiB per array (computed, not run)",
            f"{peak / 1024:.2f} GiB", f"{peak / data['rss_mb']:.2f}× the data alone",
            "peak RSS ≤ 2 GB", _ok(peak * 2**20 <= 2e9),
            f"peak RSS {_fmt_mb(peak)} MiB of which generating the events alone "
            f"{_fmt_mb(data['rss_mb'])} MiB; learn {full['out'].get('learn_s', 0):.1f} s")


def _serve_startup(state: Path, timeout: float = 120) -> dict:
    """Seconds from launching ``driftbayes serve`` until ``/__driftbayes/health`` answers."""
    import httpx

    from driftbayes.export.runtimes import free_port

    port = free_port()
    t0 = time.perf_counter()
    def limit():
        if MEM_CAP_GB[0]:
            cap = int(MEM_CAP_GB[0] * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = _Popen([sys.executable, "-c", CLI, "serve", "--state", str(state), "--port", str(port),
                   "--host", "127.0.0.1"], env=child_env(), stdout=subprocess.DEVNULL,
                  stderr=subprocess.PIPE, start_new_session=True, preexec_fn=limit)
    res = {"s": None, "rss_mb": None, "timed_out": False}
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                res["error"] = proc.stderr.read().decode(errors="replace").strip()[-200:]
                return res
            try:
                if httpx.get(f"http://127.0.0.1:{port}/__driftbayes/health",
                             timeout=1.0).status_code == 200:
                    res["s"] = time.perf_counter() - t0
                    return res
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        res["timed_out"] = True
        return res
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        res["rss_mb"] = getattr(proc, "_bench_rss", None)


def row_reads(rep: Report, args, tmp: Path) -> None:
    n = max(int(300_000 * args.scale), 1_000)
    cap = args.reads_cap
    wide = args.wide_endpoints
    # Reads cost follows the state's size (endpoints × personas), not how many windows built
    # it: the states hold the scale row's traffic compressed into 1 h (60 windows of 60 s), so
    # they are built in bounded time whatever the learner's per-window cost.
    for e, st in ((20, tmp / "state-20.nc"), (wide, tmp / "state-wide.nc")):
        made = rep.measure(f"reads: learn + save the {e:,}-endpoint state ({n:,} events, 1 h)",
                           run_child("learn_synthetic", events=n, endpoints=e, personas=4,
                                     span_s=3600.0, interval="60s", save=str(st),
                                     timeout=args.new_cap))
        if made.get("timed_out") or made.get("error"):
            raise RuntimeError(f"could not build the {e:,}-endpoint state for the reads rows")
    for name, fn in [
        ("patterns", lambda st: run_cli("patterns", "--state", str(st), "--format", "json",
                                        "--layer", "applied", timeout=cap)),
        ("serve start-up", lambda st: _serve_startup(st, timeout=cap)),
        ("export --to locust", lambda st: run_cli("export", "--to", "locust", "--state", str(st),
                                                  "--out", str(tmp / f"locust-{st.stem}.py"),
                                                  timeout=cap)),
    ]:
        small = rep.measure(f"reads: {name}, 20-endpoint state", fn(tmp / "state-20.nc"))
        big = rep.measure(f"reads: {name}, {wide:,}-endpoint state", fn(tmp / "state-wide.nc"))
        what = f"`{name}` on a {wide:,}-endpoint state"
        if big.get("timed_out"):
            rep.row(what, "—", f"> {cap:g} s", "—", "≤ 10 s", "**no**",
                    f"killed at the --reads-cap of {cap:g} s; 20-endpoint state "
                    f"{_fmt_s(small.get('s'))} s")
            continue
        if big.get("s") is None or small.get("s") is None:
            rep.row(what, "—", "failed", "—", "≤ 10 s", "**no**",
                    (big.get("error") or small.get("error") or "?")[:160])
            continue
        rep.row(what, "—", f"{big['s']:.1f} s",
                f"{big['s'] / small['s']:.2f}× the 20-endpoint state", "≤ 10 s",
                _ok(big["s"] <= 10),
                f"20-endpoint state {small['s']:.1f} s; peak RSS {_fmt_mb(big['rss_mb'])} MiB "
                "(whole CLI process incl. interpreter start)")


def row_far_future(rep: Report, args, tmp: Path) -> None:
    n = max(int(100_000 * args.scale), 1_000)
    st = tmp / "state-far.nc"
    made = rep.measure(f"far-future: learn + save a 50-endpoint state ({n:,} events, "
                       f"{args.span_hours:g} h, 60 s)",
                       run_child("learn_synthetic", events=n, endpoints=50, personas=4,
                                 span_s=args.span_hours * 3600, interval="60s", save=str(st)))
    last = made["out"]["last_ts"]
    near = run_child("one_event", ts=last + 60.0, state=str(st))
    far = run_child("one_event", ts=FAR_TS, state=str(st))
    for label, r in (("next window", near), ("ts = 1e12", far)):
        rep.measure(f"far-future: one event at {label}: learn_many + snapshot", r,
                    seconds=r["out"].get("learn_s"),
                    note=f"then patterns() {r['out'].get('read_s', float('nan')):.3f} s, "
                         f"RSS delta {r['out'].get('rss_delta_mb', float('nan')):+.1f} MiB")
    windows = (FAR_TS - last) / 60.0
    before = f"{windows:.2g} windows to close"
    if args.before:
        ref = rep.measure("far-future: reference learner, one event at ts = 1e12",
                          run_child("one_event", ts=FAR_TS, learner="reference",
                                    events=min(n, 20_000), timeout=args.before_cap,
                                    mem_gb=None))
        before += f"; reference learner this run: {_before(ref, args.before_cap)}"
        if ref.get("error"):
            rep.notes.append(f"Reference learner on the far-future event: {ref['error']}")
    fo, no = far["out"], near["out"]
    t_far, t_near = fo["learn_s"] + fo["read_s"], no["learn_s"] + no["read_s"]
    rep.row("far-future event (ts = 1e12 s) after a learned state", before,
            f"{t_far * 1e3:.0f} ms", f"{t_far / t_near:.2f}× a next-window event", "O(1)",
            _ok(t_far / t_near <= 3 and fo["rss_delta_mb"] <= max(no["rss_delta_mb"], 0) + 50),
            f"learn {fo['learn_s'] * 1e3:.0f} ms + patterns() {fo['read_s'] * 1e3:.0f} ms vs "
            f"{no['learn_s'] * 1e3:.0f} + {no['read_s'] * 1e3:.0f} ms; RSS delta "
            f"{fo['rss_delta_mb']:+.1f} vs {no['rss_delta_mb']:+.1f} MiB")
    policy = run_child("reader_far_future", tmp=str(tmp))["out"]
    rep.notes.append("JSONL reader on a far-future line: " + "; ".join(
        f"`ts: {k}` → {v}" for k, v in policy.items()) + ". Numbers ≥ 1e11 are read as epoch "
        "milliseconds, so 1e12 is 2001-09-09 (a late event, not a far-future one): the far-future "
        "row therefore feeds the learner directly via `learn_many`.")


def row_ingest(rep: Report, args, tmp: Path) -> None:
    sys.path.insert(0, str(HERE))
    import ingest

    n = max(int(1_000_000 * args.scale), 1_000)
    path = tmp / f"ingest-{n}.jsonl"
    if not path.exists():
        ingest.write_jsonl(path, n)
    new = rep.measure(f"ingest: {n:,}-event JSONL (benchmarks/ingest.py), new learner",
                      run_child("learn_file", path=str(path), interval="5m"))
    ref = rep.measure(f"ingest: {n:,}-event JSONL, reference learner",
                      run_child("learn_file", path=str(path), interval="5m", learner="reference",
                                timeout=args.before_cap * 3, mem_gb=None))
    r_new = new["out"]["n"] / new["out"]["learn_s"]
    if ref.get("timed_out") or ref.get("error"):
        rep.row(f"JSONL ingest, {n:,} events", "222,550 events/s (before the sparse core); "
                "this run: "
                f"{_before(ref, args.before_cap * 3)}", f"{r_new:,.0f} events/s", "—",
                "≥ today's, same run", "—", "")
        return
    r_ref = ref["out"]["n"] / ref["out"]["learn_s"]
    rep.row(f"JSONL ingest, {n:,} events", f"222,550 events/s (before the sparse core); this run "
            f"{r_ref:,.0f} events/s (reference learner)", f"{r_new:,.0f} events/s",
            f"{r_new / r_ref:.2f}×", "≥ today's, same run", _ok(r_new >= 0.95 * r_ref),
            f"peak RSS {_fmt_mb(new['rss_mb'])} vs {_fmt_mb(ref['rss_mb'])} MiB; "
            "read_events + learn_many + snapshot, 5-min windows, 40 endpoints")


ROWS = {"nasa": row_nasa, "scale": row_scale, "rss": row_rss, "reads": row_reads,
        "far-future": row_far_future, "ingest": row_ingest}


def section_targets(args, tmp: Path) -> list[str]:
    rep = Report()
    for key, fn in ROWS.items():
        if key in args.only:
            print(f"# {key}", flush=True)
            try:
                fn(rep, args, tmp)
            except Exception as exc:  # noqa: BLE001 - one failing row must not lose the others
                rep.row(key, "—", "failed", "—", "—", "**no**", f"{type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else ''}")
    lines = ["## 2. Targets of the sparse learner core (each measurement in its own child "
             "process)", "",
             "| measure | before | now | ratio | target | met | detail |",
             "|---|---|---:|---:|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rep.rows]
    lines += ["", "Raw measurements (wall time of the child unless noted; peak RSS of that child):",
              "", "| measurement | seconds | peak RSS MiB | note |", "|---|---:|---:|---|"]
    lines += [f"| {m} | {_fmt_s(s)} | {_fmt_mb(r)} | {note} |" for m, s, r, note in rep.raw]
    if rep.notes:
        lines += [""] + [f"- {n}" for n in rep.notes]
    return lines


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated sections: {','.join(SECTIONS)}")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every event count")
    ap.add_argument("--events", type=int, default=1_000_000, help="section 1 events (× scale)")
    ap.add_argument("--endpoints", type=int, default=50)
    ap.add_argument("--personas", type=int, default=4)
    ap.add_argument("--span-hours", type=float, default=24.0,
                    help="event time of section 1 and of the scale, rss and far-future rows")
    ap.add_argument("--update-interval", default="5m")
    ap.add_argument("--before", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the reference (window-by-window) learner where feasible")
    ap.add_argument("--before-cap", type=float, default=180.0,
                    help="seconds before a 'before' measurement is killed and reported as > N s")
    ap.add_argument("--wide-endpoints", type=int, default=5_000,
                    help="endpoints of the wide state (scale and reads rows)")
    ap.add_argument("--rss-endpoints", type=int, default=50_000,
                    help="endpoints of the peak-RSS row")
    ap.add_argument("--new-cap", type=float, default=900.0,
                    help="seconds before a new-learner run of the scale / reads rows is killed")
    ap.add_argument("--reads-cap", type=float, default=300.0,
                    help="seconds before a patterns / serve / export run is killed")
    ap.add_argument("--mem-cap-gb", type=float, default=8.0,
                    help="address-space cap (GiB) of every measured child")
    ap.add_argument("--tmp", default="/tmp/driftbayes-bench")
    ap.add_argument("--out", default=str(RESULTS / "learn_speed.md"))
    args = ap.parse_args(argv)
    MEM_CAP_GB[0] = args.mem_cap_gb
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    n = max(int(args.events * args.scale), 1_000)
    cmd = ["python benchmarks/learn_speed.py"] + (argv if argv is not None else sys.argv[1:])
    lines = [
        "# Learning speed",
        "",
        f"Command: `{' '.join(cmd)}` · machine: {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at start · {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
    ]
    if "table" in args.only:
        lines += section_table(args, n, tmp) + [""]
    if set(args.only) & set(ROWS):
        lines += section_targets(args, tmp)
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return text


if __name__ == "__main__":
    main()
