"""Benchmark output: the results table, ``results.json``, PNG plots and a static HTML report."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

_FMT = {"coverage90": "{:.3f}", "adaptation_lag": "{:.1f}"}


def wide_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Stream × metric rows, one column per learner."""
    t = scores.pivot_table(index=["stream", "metric"], columns="learner", values="value",
                           aggfunc="first", sort=False)
    return t.reindex(columns=list(dict.fromkeys(scores.learner)))


def markdown_table(scores: pd.DataFrame, ranks: pd.DataFrame, mean_rank: pd.Series) -> str:
    """The table as Markdown: each stream × metric with every learner's score, the best bold."""
    wide = wide_table(scores)
    learners = list(wide.columns)
    r = ranks.rename(columns={"scenario": "stream"}).pivot_table(
        index=["stream", "metric"], columns="learner", values="rank", aggfunc="first")
    lines = ["| stream | metric | " + " | ".join(learners) + " |",
             "|---|---|" + "---:|" * len(learners)]
    for (stream, metric), row in wide.iterrows():
        cells = []
        for name in learners:
            v = row[name]
            text = "–" if not np.isfinite(v) else _FMT.get(metric, "{:.4g}").format(v)
            best = (stream, metric) in r.index and r.loc[(stream, metric), name] == r.loc[
                (stream, metric)].min() and np.isfinite(v)
            cells.append(f"**{text}**" if best else text)
        lines.append(f"| {stream} | {metric} | " + " | ".join(cells) + " |")
    lines += ["", "| learner | mean rank |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in mean_rank.items()]
    return "\n".join(lines)


def plot_stream(series: pd.DataFrame, stream: str, path: Path, endpoint: int | None = None,
                persona: int | None = None, title: str = "") -> Path | None:
    """Observed vs each learner's served p50/p99 and error rate over time for the busiest
    cell of ``stream`` (driftbayes' 90% credible band of the median shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = series[series.stream == stream]
    if s.empty:
        return None
    if endpoint is None or persona is None:
        busiest = s.groupby(["endpoint", "persona"]).n.sum().idxmax()
        endpoint, persona = busiest
    s = s[(s.endpoint == endpoint) & (s.persona == persona)]
    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    obs = s.drop_duplicates("window").sort_values("window")
    to = pd.to_datetime(obs.t, unit="s")
    for ax, col, obs_col, label in ((axes[0], "served_p50", "obs_p50", "p50 latency (ms)"),
                                    (axes[1], "served_p99", "obs_p99", "p99 latency (ms)"),
                                    (axes[2], "served_err", "obs_err", "P(5xx)")):
        if obs_col in obs:
            ax.plot(to, obs[obs_col], "k.", ms=3, label="observed (window)")
        if col == "served_p50" and "truth_p50" in obs and stream_has_truth(obs):
            ax.plot(to, obs["truth_p50"], "k-", lw=1, alpha=0.6, label="truth")
        for name, g in s.groupby("learner", sort=False):
            g = g.sort_values("window")
            ax.plot(pd.to_datetime(g.t, unit="s"), g[col], lw=1.4 if "driftbayes" in name else 1,
                    label=name)
            if col == "served_p50" and name == "driftbayes" and "band_lo" in g:
                ax.fill_between(pd.to_datetime(g.t, unit="s"), g.band_lo, g.band_hi, alpha=0.2,
                                label="driftbayes 90% credible band (median)")
        ax.set_ylabel(label)
        if col != "served_err":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7, ncol=3)
    names = s.iloc[0] if "endpoint_name" in s else {"endpoint_name": f"#{endpoint}",
                                                      "persona_name": f"#{persona}"}
    axes[0].set_title(title or f"{stream}: {names['endpoint_name']} · persona "
                               f"{names['persona_name']} (busiest cell)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def stream_has_truth(obs: pd.DataFrame) -> bool:
    return "truth_p50" in obs and obs["truth_p50"].notna().any() and not np.allclose(
        obs["truth_p50"].fillna(-1), obs.get("obs_p50", pd.Series(dtype=float)).fillna(-1))


def plot_ranks(ranks: pd.DataFrame, path: Path) -> Path:
    """Heat map of mean rank per stream (rows) and learner (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = ranks.groupby(["scenario", "learner"])["rank"].mean().unstack()
    fig, ax = plt.subplots(figsize=(1.4 * m.shape[1] + 3, 0.4 * m.shape[0] + 1.5))
    im = ax.imshow(m.to_numpy(), cmap="RdYlGn_r", aspect="auto")
    ax.set_xticks(range(m.shape[1]), m.columns, rotation=30, ha="right")
    ax.set_yticks(range(m.shape[0]), m.index)
    for (i, j), v in np.ndenumerate(m.to_numpy()):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="mean rank over metrics (1 = best)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(out: Path, scores: pd.DataFrame, series: pd.DataFrame, ranks: pd.DataFrame,
                 mean_rank: pd.Series, *, command: str, seed: int,
                 descriptions: dict[str, str] | None = None) -> dict[str, Path]:
    """``results.json``, ``results.md``, one PNG per stream, ``ranks.png`` and ``report.html``
    (images embedded) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    md = markdown_table(scores, ranks, mean_rank)
    meta = {"command": command, "seed": seed,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    (out / "results.json").write_text(json.dumps({
        **meta, "mean_rank": mean_rank.to_dict(),
        "scores": json.loads(scores.to_json(orient="records")),
    }, indent=1))
    (out / "results.md").write_text(f"Command: `{command}` · seed {seed}\n\n{md}\n")
    pngs = {}
    for stream in dict.fromkeys(series.stream):
        p = plot_stream(series, stream, out / f"{stream}.png")
        if p is not None:
            pngs[stream] = p
    pngs["ranks"] = plot_ranks(ranks, out / "ranks.png")
    parts = [f"<h1>driftbayes realism benchmark</h1><p>{html.escape(command)} · seed {seed} · "
             f"{meta['created_at']}</p><h2>Mean rank</h2>", _img(pngs["ranks"]),
             "<h2>Scores</h2>", wide_table(scores).to_html(float_format="%.4g")]
    for stream, p in pngs.items():
        if stream == "ranks":
            continue
        desc = html.escape((descriptions or {}).get(stream, ""))
        parts += [f"<h2>{html.escape(stream)}</h2><p>{desc}</p>", _img(p)]
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>driftbayes realism</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
        "padding:2px 6px}</style>" + "\n".join(parts))
    return {"json": out / "results.json", "md": out / "results.md",
            "html": out / "report.html", **pngs}


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<img src='data:image/png;base64,{data}' style='max-width:100%'>"
