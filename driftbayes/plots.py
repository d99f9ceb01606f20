"""Drift plots: how the learned latency and error rate moved through the recording."""

from __future__ import annotations

from pathlib import Path


def plot_drift(history, *, endpoints: list[str] | None = None, persona: str | None = None,
               max_endpoints: int = 3, out: str | Path | None = None, title: str = "",
               truth=None):
    """Latency and error-rate drift per endpoint: observed windows, posterior band, applied;
    and, when the learner detects changes online, the change probability of both (the
    probability that the cell's regime changed within the last 31 windows).

    Parameters
    ----------
    history : pandas.DataFrame
        :meth:`DriftLearner.history_frame` output.
    endpoints : list of str, optional
        Endpoint keys (``"GET /x"``) to show; default the busiest ``max_endpoints``.
    persona : str, optional
        Persona to show; default the busiest.
    out : path, optional
        Write a PNG there.
    truth : pandas.DataFrame, optional
        The true values to draw beside what was learned (simulated traffic): ``time`` (window
        end), ``endpoint``, ``persona``, ``p50_ms`` and ``error_rate``, as from
        :func:`driftbayes.demo.truth_frame`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    df = history
    if persona is None:
        persona = df.groupby("persona")["n"].sum().idxmax()
    df = df[df["persona"] == persona]
    if endpoints is None:
        endpoints = list(df.groupby("endpoint")["n"].sum().nlargest(max_endpoints).index)
    change = [c for c in ("latency_change_p", "error_change_p")
              if c in df and df[c].notna().any()]
    cols = 3 if change else 2
    fig, axes = plt.subplots(len(endpoints), cols, figsize=(6.5 * cols, 3.2 * len(endpoints)),
                             squeeze=False, sharex=True)
    for row, ep in zip(axes, endpoints):
        d = df[df["endpoint"] == ep]
        t = d["time"]
        ax = row[0]
        seen = d["n"] > 0
        ax.scatter(t[seen], d["observed_latency_ms"][seen], s=6, color="0.6",
                   label="observed window median")
        ax.fill_between(t, d["latency_lower"], d["latency_upper"], color="C0", alpha=0.25,
                        label="posterior median, credible band")
        ax.plot(t, d["latency_median"], color="C0", lw=1.2)
        ax.plot(t, d["latency_applied"], color="C3", lw=1.5, label="applied (served)")
        tr = _truth_of(truth, ep, persona)
        if tr is not None:
            ax.plot(tr["time"], tr["p50_ms"], color="k", lw=1.2, ls="--",
                    drawstyle="steps-pre", label="truth (simulated)")
        ax.set_yscale("log")
        ax.set_ylabel("latency ms")
        ax.set_title(f"{ep} · {persona}: median latency", fontsize=10)
        ax = row[1]
        if d["observed_error_rate"].notna().any():
            ax.scatter(t, d["observed_error_rate"], s=6, color="0.6", label="observed window rate")
        else:
            ax.text(0.5, 0.5, "no status codes in this recording:\nerror model stays synthetic",
                    transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.fill_between(t, d["error_lower"], d["error_upper"], color="C0", alpha=0.25,
                        label="posterior, credible band")
        ax.plot(t, d["error_mean"], color="C0", lw=1.2)
        ax.plot(t, d["error_applied"], color="C3", lw=1.5, label="applied (served)")
        if tr is not None:
            ax.plot(tr["time"], tr["error_rate"], color="k", lw=1.2, ls="--",
                    drawstyle="steps-pre", label="truth (simulated)")
        ax.set_ylabel("P(status ≥ 500)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{ep} · {persona}: error rate", fontsize=10)
        if change:
            plot_change_probability(row[2], d, truth=tr)
            row[2].set_title(f"{ep} · {persona}: change probability", fontsize=10)
    for col in range(cols):
        axes[0, col].legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    return fig



def plot_change_probability(ax, history, *, threshold: float | None = 0.5, truth=None):
    """One cell's change probability per window (latency and error rate) on ``ax``: the
    probability, from its run-length posterior, that its regime changed within the last 31
    windows; ``threshold`` (``changepoint_threshold``) drawn as a dotted line, and the times
    the truth changed (a :func:`driftbayes.demo.truth_frame` cell) as vertical lines."""
    for col, label, color in (("latency_change_p", "latency", "C0"),
                              ("error_change_p", "error rate", "C1")):
        if col in history and history[col].notna().any():
            ax.plot(history["time"], history[col], color=color, lw=1.3, drawstyle="steps-pre",
                    label=label)
    if threshold is not None:
        ax.axhline(threshold, color="0.5", lw=0.8, ls=":", label="threshold")
    if truth is not None and len(truth) > 1:
        moved = (truth["p50_ms"].diff().abs() > 0) | (truth["error_rate"].diff().abs() > 0)
        for t in truth["time"][moved.to_numpy()]:
            ax.axvline(t, color="k", lw=0.6, ls="--")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("P(change in last 31 windows)")


def _truth_of(truth, endpoint: str, persona: str):
    """The rows of ``truth`` for one cell, in time order (None without truth or rows)."""
    if truth is None:
        return None
    tr = truth[(truth["endpoint"] == endpoint) & (truth["persona"] == persona)]
    return tr.sort_values("time") if len(tr) else None
