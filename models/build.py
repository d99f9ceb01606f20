"""Rebuild a learned model of a real recording with its hierarchical priors and model card.

    python models/build.py nasa        # -> models/nasa/
    python models/build.py openstack   # -> models/openstack/

The same as the CLI sequence (default config, event-time windows: deterministic up to NUTS's
seeded draws)::

    driftbayes learn NAME --state models/NAME/state.nc
    driftbayes priors fit --state models/NAME/state.nc --group-by prefix
    driftbayes patterns --state models/NAME/state.nc --format json > models/NAME/patterns.json

plus compression of the state (zlib: the NASA log has no latency, so its histograms are zeros)
and the model card, written from what was fitted. Needs the real recordings
(``DRIFTBAYES_DATA`` or ``../shared/data/real``) and PyMC (nutpie makes the fit faster).
"""

from __future__ import annotations

import gzip
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import driftbayes as db
from driftbayes.priors import fit_priors
from driftbayes.state import to_dataset

HERE = Path(__file__).parent
MODELS = {
    "nasa": {
        "title": "NASA Kennedy Space Center WWW log, 1 August 1995",
        "data": "`../shared/data/real/nasa-http-1995-08-01/nasa_19950801.tsv.gz`: 30,969 requests "
                "from 06:00 to 18:52 UTC (the log stops for Hurricane Erin), 2,365 client hosts "
                "(sessions cut at 30 minutes of inactivity). No latency field: the latency "
                "model stays at the synthetic prior and gets no group prior.",
        "license": "The Internet Traffic Archive's NASA-HTTP trace \"may be freely "
                   "redistributed\" (ita.ee.lbl.gov; copy from indeedeng/imhotep, Apache-2.0). "
                   "This folder holds only sufficient statistics and summaries of it.",
        "group_by": "prefix",
    },
    "openstack": {
        "title": "OpenStack nova-api sample (loghub OpenStack_2k)",
        "data": "`../shared/data/real/openstack-nova-api-sample/OpenStack_2k.log`: 1,017 "
                "nova-api WSGI requests on 2017-05-16 00:00–00:14:47 (about 15 minutes) with "
                "server latency and status.",
        "license": "loghub: \"The datasets are freely available for research or academic work\"; "
                   "cite Jieming Zhu, Shilin He, Pinjia He, Jinyang Liu, Michael R. Lyu. "
                   "Loghub: A Large Collection of System Log Datasets for AI-driven Log "
                   "Analytics. ISSRE 2023 (https://github.com/logpai/loghub). This folder holds "
                   "only sufficient statistics and summaries of the log, for research use.",
        "group_by": "prefix",
    },
}


def build(name: str) -> Path:
    spec = MODELS[name]
    draws = spec.get("draws", 1000)
    out = HERE / name
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    learner = db.learn(name)
    learn_s = time.perf_counter() - t0
    fit = fit_priors(learner, spec["group_by"], draws=draws, tune=draws, seed=0)
    if not fit.ok:
        raise SystemExit(f"{name}: the fit fails its diagnostics: {fit.failures[:5]}")
    learner.set_group_priors(fit.priors)
    ds = to_dataset(learner)
    enc = {v: {"zlib": True, "complevel": 6} for v in ds.data_vars
           if ds[v].dtype.kind in "fiub" and ds[v].ndim}
    ds.to_netcdf(out / "state.nc", engine="h5netcdf", encoding=enc)
    rows = learner.patterns("applied").to_dict(orient="records")
    text = json.dumps(rows, separators=(",", ":"), default=_plain) + "\n"
    patterns = out / "patterns.json"
    if len(text) > 2_000_000:  # NASA's 1,738 endpoints: gzip keeps the folder small
        patterns = out / "patterns.json.gz"
        patterns.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        patterns.write_text(text)
    (out / "MODEL_CARD.md").write_text(card(name, spec, learner, fit, learn_s, patterns.name))
    return out


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def knobs(cfg) -> str:
    """The learning knobs a model card states, from the config it was learned with."""
    syn = cfg.synthetic_for("")
    return (f"`sensitivity {cfg.sensitivity:g}`, `decay {cfg.decay:g}`, `min_samples "
            f"{cfg.min_samples:g}`, `update_interval {cfg.update_interval:g}s`, "
            f"`changepoint_hazard {cfg.changepoint_hazard:g}`, `changepoint_threshold "
            f"{cfg.changepoint_threshold:g}`, `changepoint_z {cfg.changepoint_z:g}` (request "
            f"rate), synthetic prior worth {syn.prior_strength:g} pseudo-observations fading "
            f"with `prior_fade {cfg.prior_fade:g}`")


def card(name, spec, learner, fit, learn_s, patterns: str) -> str:
    d, pri, info = fit.data, fit.priors, fit.priors.info
    cfg = learner.config
    k = float(cfg.synthetic_for("").prior_strength)
    sizes = {k: np.bincount(d.group[d.cells[k]], minlength=len(d.groups)) for k in d.kinds}
    lines = [f"# {spec['title']}: drift model with hierarchical priors", "",
             f"**Reproduce:** `python models/build.py {name}` (see the script for the same "
             "steps as CLI commands: `driftbayes learn`, `driftbayes priors fit --group-by "
             f"{spec['group_by']} --draws {info['draws']}`, `driftbayes patterns`).", "",
             f"**Data:** {spec['data']}", "", f"**License:** {spec['license']}", "",
             f"**Config:** driftbayes defaults ({knobs(cfg)}). Learned "
             f"{learner.n_events_:,} events into {len(learner.endpoints_):,} endpoints × "
             f"{len(learner.personas_)} persona(s) in {learn_s:.0f} s.", "",
             f"**Hierarchical priors:** grouped by `{pri.group_by}` (first directory of the URL "
             f"template) into {len(d.groups)} groups; {d.n_cells:,} cells; kinds fitted: "
             f"{', '.join(d.kinds)}. Fitted with {info['sampler']} "
             f"({info['chains']} chains × {info['draws']} draws after {info['tune']} tuning "
             f"steps): compile {info['compile_s']} s, sampling {info['sampling_s']} s on this "
             "2-core machine (shared with other jobs).", "",
             f"**Diagnostics:** max r_hat {info['max_r_hat']:.4f} (≤ 1.01), min bulk ESS "
             f"{info['min_ess_bulk']:.0f} (≥ 400), {info['divergences']} divergences.", "",
             "**Files:** `state.nc` (the driftbayes state with the priors; zlib-compressed "
             "NetCDF, read by every command: `driftbayes priors show --state "
             f"models/{name}/state.nc`), `{patterns}` (`driftbayes patterns --format json` of "
             "the applied layer).", "",
             "## Fitted group priors", "",
             "Posterior median (90% interval) of each group's population; `weight` is what "
             "the prior is worth in pseudo-observations before the per-endpoint cap and the "
             f"synthetic `prior_strength` ({k:g}); `cells` are the cells with evidence of that "
             "kind. "
             "`*` is the population (an endpoint of a group the fit did not see gets it).", ""]
    main = {"latency": ("median_ms", "median ms"), "think_time": ("median_ms", "median ms"),
            "errors": ("rate", "5xx rate"), "frequency": ("rate", "req/s per cell")}
    for kind in d.kinds:
        p, label = main[kind]
        lines += [f"### {kind}", "", f"| group | cells | {label} | 90% interval | "
                  + ("σ (log) | " if kind in ("latency", "think_time") else "") + "weight |",
                  "|---|---:|---:|---|" + ("---:|" if kind in ("latency", "think_time") else "")
                  + "---:|"]
        order = np.argsort(-np.r_[sizes[kind], np.inf])
        shown = [i for i in order if i == len(d.groups) or sizes[kind][i] > 0][:16]
        for i in shown:
            med, lo, hi = pri.values[f"{kind}_{p}"][i]
            n = "all" if i == len(d.groups) else str(int(sizes[kind][i]))
            sig = (f" {pri.values[f'{kind}_sigma'][i, 0]:.3g} |"
                   if kind in ("latency", "think_time") else "")
            lines.append(f"| `{pri.groups[i]}` | {n} | {med:.4g} | [{lo:.4g}, {hi:.4g}] |{sig}"
                         f" {pri.values[f'{kind}_weight'][i, 0]:.3g} |")
        rest = len(d.groups) + 1 - len(shown)
        if rest > 0:
            lines.append(f"\n({rest} more groups: `driftbayes priors show`.)")
        lines.append("")
    lines += ["**Limits:** the fit uses the learner's decay-weighted evidence at the end of the "
              "recording (what it currently believes), so long-past traffic counts little; "
              f"a cell's prior weighs at most {k:g} pseudo-observations (the synthetic "
              "`prior_strength`) and at least 1. Timings are from a 2-core machine shared with "
              "other jobs (load average 4–7 during these runs): compiling and sampling take "
              "several times longer than on an idle one (`benchmarks/results/priors_fit.md`).",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    names = sys.argv[1:] or list(MODELS)
    for n in names:
        if n not in MODELS:
            raise SystemExit(f"unknown model {n!r}; choose from {', '.join(MODELS)}")
        print(build(n))
