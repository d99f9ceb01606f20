"""How long ``driftbayes priors fit`` takes on the NASA log (1,738 endpoints), cold.

Each run is its own child process with an empty PyTensor compile cache (a fresh
``PYTENSOR_FLAGS=compiledir=…``), so compilation starts from nothing: the same as a first fit on
a new machine. The state is learned once (``driftbayes learn nasa``) and copied for every run.
Compile, sampling and post-processing time (diagnostics and the stored priors; the pointwise
log-likelihood is not computed, as in ``driftbayes priors fit``) are reported apart, with the
machine's load average (the machine is shared: sampling and compiling slow down with it).
Writes ``benchmarks/results/priors_fit.md``::

    python benchmarks/priors_fit.py [--samplers nutpie,pymc] [--repeat N] [--group-by prefix]
        [--state S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "priors_fit.md"
CHILD = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
from driftbayes.state import load_state
from driftbayes.priors import fit_priors
learner = load_state(sys.argv[1])
t1 = time.perf_counter()
fit = fit_priors(learner, sys.argv[2], sampler=sys.argv[3])
t2 = time.perf_counter()
print(json.dumps({"import_load_s": t1 - t0, "fit_s": t2 - t1, "compile_s": fit.compile_s,
                  "sampling_s": fit.sampling_s, "post_s": fit.post_s, "sampler": fit.sampler,
                  "groups": len(fit.data.groups), "cells": fit.data.n_cells,
                  "ok": fit.ok, "failures": fit.failures[:3],
                  "max_r_hat": float(fit.diagnostics.r_hat.max()),
                  "min_ess": float(fit.diagnostics.ess_bulk.min()),
                  "divergences": fit.divergences}))
"""


def run(state: Path, group_by: str, sampler: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTENSOR_FLAGS=f"compiledir={tmp}/pytensor",
                   NUMBA_CACHE_DIR=f"{tmp}/numba", PYTHONPATH=str(ROOT))
        copy = Path(tmp) / "state.nc"
        shutil.copy(state, copy)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(copy), group_by, sampler],
                             env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {**res, "wall_s": wall, "load_before": load, "load_after": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samplers", default="nutpie,pymc")
    ap.add_argument("--repeat", type=int, default=1, help="cold runs of each sampler")
    ap.add_argument("--group-by", default="prefix")
    ap.add_argument("--state", type=Path, help="a learned NASA state (default: learn it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = args.state
        if state is None:
            state = Path(tmp) / "nasa.nc"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "driftbayes", "learn", "nasa", "--state",
                            str(state), "--no-progress"], check=True, capture_output=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
            print(f"learned nasa in {time.perf_counter() - t0:.0f} s")
        rows = [run(state, args.group_by, s) for s in args.samplers.split(",")
                for _ in range(args.repeat)]
    lines = ["# `driftbayes priors fit` on the NASA log, cold", "",
             f"`python benchmarks/priors_fit.py` — {time.strftime('%Y-%m-%d')}, 2 cores shared "
             "with other jobs (load average beside each run), empty PyTensor compile cache per "
             "run; 2 chains × 1000 draws after 1000 tuning steps.", "",
             "| sampler | group by | groups | cells | compile s | sampling s | post s | "
             "whole fit s | process wall s | load avg | max r̂ | min ESS | divergences | stored |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['sampler']} | {args.group_by} | {r['groups']} | {r['cells']} | "
                     f"{r['compile_s']:.1f} | {r['sampling_s']:.1f} | {r['post_s']:.1f} | "
                     f"{r['fit_s']:.1f} | "
                     f"{r['wall_s']:.1f} | {r['load_before']:.1f}→{r['load_after']:.1f} | "
                     f"{r['max_r_hat']:.3f} | {r['min_ess']:.0f} | {r['divergences']} | "
                     f"{'yes' if r['ok'] else 'no: ' + '; '.join(r['failures'])} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
